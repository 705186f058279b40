'use strict';
// Login brute-force protection: too many failed logins for one client + email -> 429.
const { RateLimited } = require('./errors');

class LoginRateLimiter {
  constructor(maxFailures = 5, windowMs = 60000) {
    this.maxFailures = maxFailures;
    this.windowMs = windowMs;
    this.failures = new Map(); // key -> [window start, failures]
  }

  check(key) {
    const now = performance.now();
    const [started, count] = this.failures.get(key) || [now, 0];
    if (now - started >= this.windowMs) {
      this.failures.delete(key);
      return;
    }
    if (count >= this.maxFailures) {
      throw new RateLimited('too many failed login attempts', Math.max(1, Math.ceil((this.windowMs - (now - started)) / 1000)));
    }
  }

  recordFailure(key) {
    const now = performance.now();
    let [started, count] = this.failures.get(key) || [now, 0];
    if (now - started >= this.windowMs) [started, count] = [now, 0];
    this.failures.set(key, [started, count + 1]);
    // Forget stale keys so a scan of many emails cannot grow memory forever.
    if (this.failures.size > 10000) {
      for (const [k, [s]] of this.failures) if (now - s >= this.windowMs) this.failures.delete(k);
    }
  }

  reset(key) {
    this.failures.delete(key);
  }
}

module.exports = { LoginRateLimiter };

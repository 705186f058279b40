'use strict';
// Errors handlers throw to answer with an HTTP error. Those with a `securityReason` also make a
// `security` log line and move auth_failures_total or rate_limit_hits_total.

class ApiError extends Error {
  constructor(message, { status = 500, code = 'internal_error', securityReason = null } = {}) {
    super(message);
    this.name = this.constructor.name;
    this.status = status;
    this.code = code;
    this.securityReason = securityReason;
  }
}

const badRequest = (message, code = 'bad_request') => new ApiError(message, { status: 400, code });
const notFound = (message, code = 'not_found') => new ApiError(message, { status: 404, code });
const methodNotAllowed = (message) => new ApiError(message, { status: 405, code: 'method_not_allowed' });
const conflict = (message, code = 'conflict') => new ApiError(message, { status: 409, code });
const unauthenticated = (message, reason) => new ApiError(message, { status: 401, code: 'unauthenticated', securityReason: reason });
const forbidden = (message) => new ApiError(message, { status: 403, code: 'forbidden', securityReason: 'forbidden' });

class RateLimited extends ApiError {
  constructor(message, retryAfter) {
    super(message, { status: 429, code: 'rate_limited', securityReason: 'rate_limited' });
    this.retryAfter = retryAfter;
  }
}

// The error_rate fault: an unhandled bug, answered 500 and reported to Sentry.
class SimulatedFailure extends Error {
  constructor(message) {
    super(message);
    this.name = 'SimulatedFailure';
  }
}

// The crash fault: thrown outside any request handler, so nothing catches it.
class SimulatedCrash extends Error {
  constructor(message) {
    super(message);
    this.name = 'SimulatedCrash';
  }
}

// No pool connection became free in time: 503.
class PoolExhaustedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'PoolExhaustedError';
  }
}

module.exports = {
  ApiError, PoolExhaustedError, RateLimited, SimulatedCrash, SimulatedFailure,
  badRequest, conflict, forbidden, methodNotAllowed, notFound, unauthenticated,
};

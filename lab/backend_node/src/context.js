'use strict';
// The per-request context (correlation id, method, route, user) that log lines and Sentry
// events carry. Kept in an AsyncLocalStorage so code at any depth can tag what it emits.
const { AsyncLocalStorage } = require('node:async_hooks');
const crypto = require('node:crypto');

const storage = new AsyncLocalStorage();

// A caller-supplied id is trusted only if short and plain: it ends up in log lines, response
// headers and Sentry tags.
const SAFE_CORRELATION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const SAFE_HEADER_VALUE = /^[\x21-\x7e]{1,256}$/;

function correlationIdFrom(req) {
  const supplied = (req.get('X-Correlation-ID') || '').trim();
  return SAFE_CORRELATION_ID.test(supplied) ? supplied : crypto.randomUUID();
}

// The user from X-User-Id/-Email/-Role (set by the auth proxy in front of the real backend).
function userFrom(req) {
  const id = (req.get('X-User-Id') || '').trim();
  if (!SAFE_HEADER_VALUE.test(id)) return null;
  const email = (req.get('X-User-Email') || '').trim();
  const role = (req.get('X-User-Role') || '').trim().toLowerCase();
  return {
    id,
    email: SAFE_HEADER_VALUE.test(email) ? email : null,
    role: SAFE_HEADER_VALUE.test(role) ? role : 'member',
  };
}

const currentRequest = () => storage.getStore() || null;

module.exports = { correlationIdFrom, currentRequest, storage, userFrom };

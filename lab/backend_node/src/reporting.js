'use strict';
// Sentry error reporting with @sentry/node 11 (docs/contract.md section 6,
// docs/howto-sentry-node.md). Initialised from instrument.mjs, before the app loads.
//
// - OpenTelemetry owns tracing. Sentry runs without a tracer provider of its own
//   (`enableOpenTelemetrySetup` stays false) and without Sentry performance (no
//   `tracesSampleRate`), and `openTelemetryIntegration()` attaches each event to the active
//   OpenTelemetry span: the event's trace id is the one Jaeger/Tempo and the log lines carry.
//   A Sentry span of its own would win over the OpenTelemetry one (the integration's docs),
//   hence no SENTRY_TRACES_SAMPLE_RATE.
// - Only server errors become events: a 5xx response (captured by the request lifecycle,
//   tagged `http.status_code`) and a crash (the SDK's uncaught-exception and
//   unhandled-rejection handlers, `mechanism.handled: false`). `beforeSend` keeps exactly those.
// - No PII: v11 collects user info, cookies, headers, query strings, bodies and frame
//   variables by default (`dataCollection`); each is switched off here. The user is set
//   explicitly: id and role, plus the email for staff and admin (work addresses).
const Sentry = require('@sentry/node');

const STATUS_TAG = 'http.status_code';
const EMAIL_ROLES = ['staff', 'admin'];
const FLUSH_TIMEOUT_MS = 5000;
let enabled = false;

// A crash: an exception nothing handled (the SDK's global handlers mark it handled: false).
function isCrash(event) {
  const values = event.exception?.values || [];
  return values.some((value) => value.mechanism?.handled === false);
}

// beforeSend: keep an event captured for a 5xx response, or a crash; drop the rest.
// The request's data goes too: with everything in `dataCollection` off, what is left is the
// URL with the Host the client used; the route is in the transaction name.
function onlyServerErrors(event) {
  const tags = event.tags || {};
  let keep;
  if (STATUS_TAG in tags) {
    const status = Number(tags[STATUS_TAG]);
    keep = Number.isInteger(status) && status >= 500;
  } else {
    keep = isCrash(event);
  }
  if (!keep) return null;
  delete event.request;
  return event;
}

// Checks the DSN's shape as the SDK would use it; returns why it is unusable, or null.
// The message never quotes the DSN (its key).
function dsnProblem(dsn) {
  let url;
  try {
    url = new URL(dsn);
  } catch {
    return 'not a URL';
  }
  if (!['http:', 'https:'].includes(url.protocol)) return 'scheme must be http or https';
  if (!url.username) return 'no public key';
  if (!/^\d+$/.test(url.pathname.split('/').pop())) return 'project id must be numeric';
  return null;
}

// Returns [enabled, problem]: problem says why a set DSN was refused.
function initSentry(settings) {
  if (!settings.sentryDsn) return [false, null];
  const problem = dsnProblem(settings.sentryDsn);
  if (problem) return [false, problem];
  Sentry.init({
    dsn: settings.sentryDsn,
    environment: settings.sentryEnvironment,
    release: settings.sentryRelease,
    // Dedupe (a default) drops an event equal to the previous one: ten requests failing the
    // same way would make one event, and nine correlation ids would find nothing in Sentry.
    integrations: (defaults) => [...defaults.filter((i) => i.name !== 'Dedupe'), Sentry.openTelemetryIntegration()],
    beforeSend: onlyServerErrors,
    dataCollection: {
      userInfo: false,
      cookies: false,
      httpHeaders: false,
      httpBodies: [],
      urlQueryParams: false,
      stackFrameVariables: false,
    },
    includeLocalVariables: false,
    maxBreadcrumbs: 50,
  });
  enabled = true;
  return [true, null];
}

// At the start of a request (inside its own isolation scope): no breadcrumbs from before,
// the correlation id and the OpenTelemetry trace id as tags.
function startRequestScope(scope, ctx, traceId) {
  if (!enabled) return;
  scope.clearBreadcrumbs();
  scope.setTag('correlation_id', ctx.correlationId);
  if (traceId) scope.setTag('trace_id', traceId);
  setUser(scope, ctx.user);
}

function setUser(scope, user) {
  if (!enabled || !user) return;
  const sent = { id: user.id, role: user.role };
  if (user.email && EMAIL_ROLES.includes(user.role)) sent.email = user.email;
  scope.setUser(sent);
}

// Reports `error` for a 5xx response; returns the event id (null if Sentry is off).
function captureServerError(error, status, transaction) {
  if (!enabled || status < 500) return null;
  return Sentry.withScope((scope) => {
    scope.setTag(STATUS_TAG, String(status));
    scope.setTransactionName(transaction);
    return Sentry.captureException(error);
  });
}

async function flushSentry() {
  if (enabled) await Sentry.close(FLUSH_TIMEOUT_MS);
}

module.exports = {
  captureServerError, flushSentry, initSentry, isCrash, isEnabled: () => enabled, onlyServerErrors, setUser, startRequestScope,
};

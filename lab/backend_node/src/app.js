'use strict';
// The Express app and the request lifecycle, where the contract is kept:
// - /health and /metrics first: not instrumented (no metric, log line; the http
//   instrumentation ignores them, so no span);
// - every other request gets a context (correlation id, user), its own Sentry isolation scope
//   and the attributes of its SERVER span (made by the http instrumentation);
// - faults apply to /api/* only, so /admin, /health and /metrics stay usable;
// - 5xx: a `request failed` line (a breadcrumb), then the Sentry event; 401/403/429: a
//   `security` line and a failure counter; 4xx never reach Sentry;
// - then http_requests_total, http_request_duration_seconds and one `request completed` line.
const express = require('express');
const Sentry = require('@sentry/node');
const { context, trace, SpanStatusCode } = require('@opentelemetry/api');
const { getRPCMetadata, RPCType } = require('@opentelemetry/core');
const data = require('./data');
const log = require('./log');
const metrics = require('./metrics');
const reporting = require('./reporting');
const { SentinelApi } = require('./api');
const { DatabasePool } = require('./db');
const { FaultSwitches } = require('./faults');
const { correlationIdFrom, storage, userFrom } = require('./context');
const {
  ApiError, PoolExhaustedError, SimulatedCrash, SimulatedFailure, methodNotAllowed, notFound, unauthenticated,
} = require('./errors');

const UNMATCHED_ROUTE = 'unmatched';
const SECURITY_MESSAGES = {
  missing_user_context: 'authentication failed',
  invalid_credentials: 'authentication failed',
  forbidden: 'access forbidden',
  rate_limited: 'rate limit exceeded',
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function errorResponse(error) {
  if (error instanceof ApiError) {
    const headers = error.retryAfter ? { 'Retry-After': String(error.retryAfter) } : {};
    return { status: error.status, body: { error: { code: error.code, message: error.message } }, headers };
  }
  if (error instanceof PoolExhaustedError) {
    return { status: 503, body: { error: { code: 'db_pool_exhausted', message: 'database unavailable, try again later' } } };
  }
  // An unhandled bug: 500, never the exception's text.
  return { status: 500, body: { error: { code: 'internal_error', message: 'internal server error' } } };
}

function createApp(settings, { onCrash }) {
  const faults = new FaultSwitches(settings.faultsFile);
  const db = new DatabasePool(() => faults.current().db_pool_exhausted);
  const api = new SentinelApi(db, faults);
  metrics.buildInfo.set({ version: settings.version, environment: settings.environment }, 1);
  metrics.activeMembers.set(data.activeMemberCount());
  metrics.initLabelValues(data.SITES, Object.keys(data.EVENTS));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Always 200 while the process serves, so a restart with db_pool_exhausted still on passes
  // the deploy's readiness check; probes that care read the body.
  app.get('/health', (req, res) => {
    const exhausted = faults.current().db_pool_exhausted;
    res.json({
      status: exhausted ? 'degraded' : 'ok',
      service: settings.serviceName,
      version: settings.version,
      checks: { database: exhausted ? 'pool exhausted' : 'ok' },
    });
  });
  app.get('/metrics', async (req, res) => {
    res.set('Content-Type', metrics.register.contentType).send(await metrics.register.metrics());
  });

  // The request's context, Sentry scope and SERVER span attributes.
  app.use((req, res, next) => {
    const span = trace.getActiveSpan();
    const ctx = {
      correlationId: correlationIdFrom(req),
      method: req.method,
      route: UNMATCHED_ROUTE,
      user: userFrom(req),
      started: performance.now(),
      serverSpanId: span?.spanContext().spanId,
    };
    req.ctx = ctx;
    res.set('X-Correlation-ID', ctx.correlationId);
    if (span) {
      span.setAttribute('sentinel.correlation_id', ctx.correlationId);
      if (ctx.user) span.setAttributes({ 'enduser.id': ctx.user.id, 'enduser.role': ctx.user.role });
    }
    req.sentryScope = Sentry.getIsolationScope().clone();
    reporting.startRequestScope(req.sentryScope, ctx, span?.spanContext().traceId);
    next();
  });

  // Runs `fn` in the request's context and Sentry scope. Entered again in each handler: the
  // body parser resumes in the request stream's callbacks, outside any AsyncLocalStorage
  // context a middleware set (OpenTelemetry's context survives: its http instrumentation binds
  // the stream).
  const enter = (req, fn) => storage.run(req.ctx, () => Sentry.withIsolationScope(req.sentryScope, fn));
  // Parsed per route (below), so a body that is not JSON is a 400 under the route's template.
  const jsonBody = express.json({ limit: '1mb' });

  const finish = (req, res, outcome, error) => {
    const { ctx } = req;
    const { status } = outcome;
    const span = trace.getActiveSpan();
    let sentryEventId = null;
    if (error?.securityReason) {
      if (error.securityReason === 'rate_limited') metrics.rateLimitHits.inc({ route: ctx.route });
      else metrics.authFailures.inc({ reason: error.securityReason });
      log.warn(SECURITY_MESSAGES[error.securityReason] || error.securityReason, {
        stream: 'security', reason: error.securityReason, clientAddress: req.socket.remoteAddress,
      });
    }
    if (ctx.user) {
      span?.setAttribute('enduser.id', ctx.user.id); // a login may have set it
      reporting.setUser(Sentry.getIsolationScope(), ctx.user);
    }
    if (status >= 500) {
      const failure = error || new Error(`HTTP ${status}`);
      log.error('request failed', { errorType: failure.name, errorMessage: failure.message, error: failure.stack });
      if (span) {
        span.setAttribute('error.type', failure.name);
        span.recordException(failure);
        span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
      }
      sentryEventId = reporting.captureServerError(failure, status, `${ctx.method} ${ctx.route}`);
    }
    const duration = (performance.now() - ctx.started) / 1000;
    metrics.httpRequests.inc({ method: ctx.method, route: ctx.route, status: String(status) });
    metrics.httpRequestDuration.observe({ method: ctx.method, route: ctx.route }, duration);
    const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
    log.log(level, 'request completed', {
      status, duration_ms: Math.round(duration * 1e6) / 1e3, ...(sentryEventId ? { sentryEventId } : {}),
    });
    res.status(status).set(outcome.headers || {}).json(outcome.body);
  };

  const applyFaults = async (req) => {
    const state = faults.current(); // re-reads the faults file if it changed
    if (state.crash) await crash(faults, onCrash);
    if (state.latency_ms) await sleep(state.latency_ms);
    if (state.error_rate && Math.random() < state.error_rate) {
      throw new SimulatedFailure(`simulated failure in ${req.ctx.route} (fault error_rate=${state.error_rate})`);
    }
  };

  // Runs one route's handler (or the 404/405 answer) with the request's route template.
  const serve = (template, handler, isPublic) => (req, res) => enter(req, () => run(req, res, template, handler, isPublic));

  const run = async (req, res, template, handler, isPublic) => {
    req.ctx.route = template || UNMATCHED_ROUTE;
    if (template) {
      // The http instrumentation names the SERVER span `{METHOD} {route}` from this.
      const rpc = getRPCMetadata(context.active());
      if (rpc?.type === RPCType.HTTP) rpc.route = template;
      trace.getActiveSpan()?.setAttribute('http.route', template);
    }
    let outcome;
    let error = null;
    try {
      if (req.path.startsWith('/api/')) await applyFaults(req);
      if (!isPublic && !req.ctx.user) throw unauthenticated('X-User-Id is missing', 'missing_user_context');
      outcome = await handler(req);
    } catch (err) {
      error = err;
      outcome = errorResponse(err);
    }
    finish(req, res, outcome, error);
  };

  const byTemplate = new Map();
  for (const route of api.routes()) {
    if (!byTemplate.has(route.template)) byTemplate.set(route.template, app.route(route.template));
    byTemplate.get(route.template)[route.method.toLowerCase()](jsonBody, serve(route.template, route.handler, route.isPublic));
  }
  // A wrong method on a known path: 405 under the route's template.
  for (const [template, router] of byTemplate) {
    router.all(serve(template, async (req) => { throw methodNotAllowed(`${req.method} is not allowed on ${template}`); }, true));
  }
  app.use(serve(null, async (req) => { throw notFound(`no route for ${req.method} ${req.path}`); }, true));
  // A body that is not JSON (express.json's error): 400, through the same lifecycle.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => {
    const template = req.route?.path || null;
    const bad = err.type === 'entity.parse.failed' || err.type === 'entity.too.large'
      ? new ApiError('request body is not valid JSON', { status: err.status || 400, code: 'bad_request' }) : err;
    serve(template, async () => { throw bad; }, true)(req, res);
  });
  return app;
}

// The crash fault: clear the one-shot switch, log it, then throw where nothing catches it.
// @sentry/node's uncaught-exception handler reports it (handled: false), flushes and exits 1.
async function crash(faults, onCrash) {
  const cleared = faults.consumeCrash();
  log.fatal('simulated crash: exiting (fault crash=true)', { crashSwitchCleared: cleared });
  await log.flushed();
  onCrash();
  setImmediate(() => {
    throw new SimulatedCrash('simulated crash (fault crash=true)');
  });
  await new Promise(() => {}); // the request never answers
}

module.exports = { createApp, UNMATCHED_ROUTE };

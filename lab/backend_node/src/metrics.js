'use strict';
// Prometheus metrics on GET /metrics (docs/contract.md section 3, files/backend/contract.yml).
// Every label has a bounded set of values: route templates (never raw paths), SQL verbs,
// reason codes, the data set's sites and events.
const client = require('prom-client');

const register = new client.Registry();
// process_* (the names the contract builds on) and nodejs_* (not built on).
client.collectDefaultMetrics({ register });

// Apdex needs bounds at T and 4T: T = 0.3 s (0.3 and 1.2); 0.25/1 keep T = 0.25 s possible.
const HTTP_DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.3, 0.5, 1, 1.2, 2, 5];
const DB_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SESSION_DURATION_BUCKETS = [60, 300, 900, 1800, 3600, 7200, 14400, 28800];

const on = { registers: [register] };
const m = {
  httpRequests: new client.Counter({ name: 'http_requests_total', help: 'HTTP requests handled, by route template and status code.', labelNames: ['method', 'route', 'status'], ...on }),
  httpRequestDuration: new client.Histogram({ name: 'http_request_duration_seconds', help: 'Time from request received to response ready.', labelNames: ['method', 'route'], buckets: HTTP_DURATION_BUCKETS, ...on }),
  dbQueryDuration: new client.Histogram({ name: 'db_query_duration_seconds', help: 'Duration of database queries that ran, by SQL verb.', labelNames: ['operation'], buckets: DB_DURATION_BUCKETS, ...on }),
  authFailures: new client.Counter({ name: 'auth_failures_total', help: 'Requests refused for authentication or authorisation, by reason.', labelNames: ['reason'], ...on }),
  rateLimitHits: new client.Counter({ name: 'rate_limit_hits_total', help: 'Requests answered 429 by the rate limiter.', labelNames: ['route'], ...on }),
  checkins: new client.Counter({ name: 'sentinel_checkins_total', help: 'Member check-ins recorded, by site.', labelNames: ['site'], ...on }),
  activeMembers: new client.Gauge({ name: 'sentinel_active_members', help: 'Members whose membership is active.', ...on }),
  visitors: new client.Counter({ name: 'sentinel_visitors_total', help: 'Visitors registered.', ...on }),
  badgeScans: new client.Counter({ name: 'sentinel_badge_scans_total', help: 'Check-ins made by scanning a badge.', ...on }),
  eventAttendance: new client.Counter({ name: 'sentinel_event_attendance_total', help: 'Event attendances recorded, by event id.', labelNames: ['event'], ...on }),
  dutyAssignments: new client.Counter({ name: 'sentinel_duty_assignments_total', help: 'Duty assignments returned by duty roster look-ups.', ...on }),
  sessionDuration: new client.Histogram({ name: 'sentinel_sessions_duration_seconds', help: 'On-site visit length, from check-in to check-out.', buckets: SESSION_DURATION_BUCKETS, ...on }),
  buildInfo: new client.Gauge({ name: 'sentinel_build_info', help: 'Always 1; labels tell the running version and environment.', labelNames: ['version', 'environment'], ...on }),
};

// The pool gauges are computed at scrape time, so the db_pool_exhausted fault shows at once.
function registerPoolGauge(pool) {
  new client.Gauge({
    name: 'db_pool_connections',
    help: 'Database pool connections: active (checked out), idle, max (pool size).',
    labelNames: ['state'],
    ...on,
    collect() {
      const active = pool.active();
      this.set({ state: 'active' }, active);
      this.set({ state: 'idle' }, pool.size - active);
      this.set({ state: 'max' }, pool.size);
    },
  });
}

const AUTH_FAILURE_REASONS = ['missing_user_context', 'invalid_credentials', 'forbidden'];
const DB_OPERATIONS = ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

// Every known series at 0 from start-up, so rate() and absent() work from the first scrape.
function initLabelValues(sites, events) {
  for (const reason of AUTH_FAILURE_REASONS) m.authFailures.inc({ reason }, 0);
  for (const site of sites) m.checkins.inc({ site }, 0);
  for (const event of events) m.eventAttendance.inc({ event }, 0);
  for (const operation of DB_OPERATIONS) m.dbQueryDuration.zero({ operation });
}

module.exports = { ...m, initLabelValues, register, registerPoolGauge };

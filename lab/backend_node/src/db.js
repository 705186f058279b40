'use strict';
// A simulated PostgreSQL layer: a bounded connection pool and timed queries. No database is
// involved: each "query" checks a connection out, waits a few milliseconds and runs a function
// over the in-memory data set, reporting what a driver instrumentation would: a CLIENT span,
// a db_query_duration_seconds sample and a Sentry `query` breadcrumb.
const { trace, SpanKind, SpanStatusCode } = require('@opentelemetry/api');
const Sentry = require('@sentry/node');
const metrics = require('./metrics');
const { PoolExhaustedError } = require('./errors');

const POOL_SIZE = 10;
const ACQUIRE_TIMEOUT_MS = 2000;
const QUERY_TIME_MS = { SELECT: [1, 12], INSERT: [2, 15], UPDATE: [2, 15], DELETE: [2, 10] };
const tracer = trace.getTracer('sentinel-backend');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class DatabasePool {
  constructor(poolExhausted, size = POOL_SIZE) {
    this.size = size;
    this.poolExhausted = poolExhausted;
    this.checkedOut = 0;
    this.waiters = [];
    metrics.registerPoolGauge(this);
  }

  // All connections count as checked out while the pool-exhausted fault is on.
  active() {
    return this.poolExhausted() ? this.size : this.checkedOut;
  }

  async query(operation, table, statement, run) {
    const span = tracer.startSpan(`${operation} ${table}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        'db.system': 'postgresql', 'db.name': 'sentinel', 'db.operation': operation, 'db.sql.table': table, 'db.statement': statement,
      },
    });
    Sentry.addBreadcrumb({ type: 'query', category: 'query', message: statement });
    try {
      await this.acquire();
      try {
        const started = performance.now();
        const [low, high] = QUERY_TIME_MS[operation] || [1, 10];
        await sleep(low + Math.random() * (high - low));
        const result = run();
        metrics.dbQueryDuration.observe({ operation }, (performance.now() - started) / 1000);
        return result;
      } finally {
        this.release();
      }
    } catch (err) {
      span.recordException(err);
      span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
      throw err;
    } finally {
      span.end();
    }
  }

  async acquire() {
    if (this.poolExhausted()) throw new PoolExhaustedError(`database pool exhausted: ${this.size}/${this.size} connections in use`);
    if (this.checkedOut < this.size) {
      this.checkedOut += 1;
      return;
    }
    await new Promise((resolve, reject) => {
      const waiter = { resolve, timer: setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new PoolExhaustedError(`timed out after ${ACQUIRE_TIMEOUT_MS / 1000}s waiting for a database connection`));
      }, ACQUIRE_TIMEOUT_MS) };
      this.waiters.push(waiter);
    });
  }

  release() {
    const next = this.waiters.shift();
    if (next) {
      clearTimeout(next.timer);
      next.resolve(); // the connection passes straight to the next waiter
    } else {
      this.checkedOut -= 1;
    }
  }
}

module.exports = { DatabasePool, POOL_SIZE };

'use strict';
// JSON log lines through Winston, on stdout (journald) and in SENTINEL_LOG_FILE, which the
// collector agent tails (docs/contract.md section 4).
//
// The lines use the contract's names (ts, msg, traceId, spanId), written by our own format
// rather than by @opentelemetry/instrumentation-winston (whose trace_id/span_id injection is
// switched off in instrument.mjs): the agent accepts stock Winston's names too, but one set of
// names from the app keeps the erasure and retention selectors simple.
// Levels are the contract's (Winston's npm levels have no `fatal`).
const fs = require('node:fs');
const winston = require('winston');
const { trace } = require('@opentelemetry/api');
const Sentry = require('@sentry/node');
const { currentRequest } = require('./context');

const LEVELS = { fatal: 0, error: 1, warn: 2, info: 3, debug: 4 };
const STREAMS = new Set(['app', 'security', 'audit']);
// The file rotates at 50 MB, keeping 5 old files. `tailable`: the live file is always
// backend.log and the old ones backend1.log .. backend5.log (Winston's names; the agent's
// include matches both these and backend.log.N).
const LOG_FILE_MAX_BYTES = 50 * 1024 * 1024;
const LOG_FILE_BACKUPS = 5;

let service = 'sentinel-backend';
let environment = 'unknown';
let fileTransport = null;

const lineFormat = winston.format((info) => {
  const { level, message, stream = 'app', ...extras } = info;
  const line = {
    ts: new Date().toISOString(),
    level,
    msg: message,
    service,
    env: environment,
    stream,
  };
  const ctx = currentRequest();
  if (ctx) {
    line.correlationId = ctx.correlationId;
    line.method = ctx.method;
    line.route = ctx.route;
    line.userId = ctx.user ? ctx.user.id : null;
  }
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (ctx && spanContext && trace.isSpanContextValid(spanContext)) {
    line.traceId = spanContext.traceId;
    line.spanId = ctx.serverSpanId || spanContext.spanId;
  }
  for (const key of Object.keys(extras)) line[key] = extras[key];
  // Winston keeps its own fields under symbols; the rendered line replaces the message.
  info[Symbol.for('message')] = JSON.stringify(line);
  return info;
});

const logger = winston.createLogger({
  levels: LEVELS,
  level: 'info',
  format: lineFormat(),
  transports: [new winston.transports.Console()],
});

// Returns why the file could not be opened, or null. The backend keeps running without it:
// stdout (journald) still has every line. Winston would create a missing directory itself,
// so the file is opened once here first, as the service user sees it.
function configureLogging(serviceName, env, logFile) {
  service = serviceName;
  environment = env;
  if (!logFile) return null;
  try {
    fs.closeSync(fs.openSync(logFile, 'a'));
  } catch (err) {
    return `${logFile}: ${err.code || err.message}`;
  }
  fileTransport = new winston.transports.File({
    filename: logFile, maxsize: LOG_FILE_MAX_BYTES, maxFiles: LOG_FILE_BACKUPS + 1, tailable: true,
  });
  logger.add(fileTransport);
  return null;
}

// One line on `stream` with extra fields; inside a request also a Sentry breadcrumb (the
// request's own lines lead up to its error event).
function log(level, msg, { stream = 'app', ...fields } = {}) {
  if (!STREAMS.has(stream)) throw new Error(`unknown log stream ${stream}`);
  logger.log({ level, message: msg, stream, ...fields });
  if (currentRequest() && LEVELS[level] <= LEVELS.info) {
    Sentry.addBreadcrumb({ category: 'log', level: level === 'warn' ? 'warning' : level, message: msg });
  }
}

// Resolves once the file has every line logged so far (or at once without a file), so that
// a crash or an exit does not lose the last lines.
function flushed(timeoutMs = 2000) {
  if (!fileTransport) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const check = () => {
      if (!fileTransport._stream || fileTransport._stream.writableLength === 0) {
        clearTimeout(timer);
        resolve();
      } else setImmediate(check);
    };
    setImmediate(check);
  });
}

module.exports = {
  configureLogging, flushed, log,
  info: (msg, fields) => log('info', msg, fields),
  warn: (msg, fields) => log('warn', msg, fields),
  error: (msg, fields) => log('error', msg, fields),
  fatal: (msg, fields) => log('fatal', msg, fields),
};

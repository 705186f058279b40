'use strict';
// The Sentinel backend's entry point: `node --import ./src/instrument.mjs src/server.js`.
// SIGTERM/SIGINT: stop accepting, export batched spans, flush Sentry, log `stopped`, exit 0.
// Bad configuration: exit 2 (docs/contract.md section 7).
const http = require('node:http');
const state = require('./startup');
const log = require('./log');

async function main() {
  if (!state.settings) {
    log.configureLogging('sentinel-backend', 'unknown', null);
    log.fatal('invalid configuration', { detail: state.configError ? state.configError.message : 'instrument.mjs was not loaded (node --import)' });
    await log.flushed();
    process.exitCode = 2;
    return;
  }
  const { settings } = state;
  const logFileProblem = log.configureLogging(settings.serviceName, settings.environment, settings.logFile);
  if (logFileProblem) log.error('log file unavailable', { detail: logFileProblem });
  if (state.sentryProblem) log.error('Sentry disabled: SENTRY_DSN is not a valid DSN', { detail: state.sentryProblem });

  const { createApp } = require('./app');
  let server = null;
  const app = createApp(settings, { onCrash: () => server && server.close() });
  server = http.createServer(app);
  server.keepAliveTimeout = 5000;

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    server.closeIdleConnections();
    await new Promise((resolve) => server.close(resolve));
    await Promise.allSettled([state.sdk?.shutdown(), require('./reporting').flushSentry()]);
    log.info('stopped');
    await log.flushed();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  server.listen(settings.port, settings.host, () => {
    const { address, port } = server.address();
    log.info('listening', {
      host: address, port, pid: process.pid, version: settings.version, sentry: state.sentry,
      otlpExport: Boolean(settings.otlpEndpoint), faultsFile: settings.faultsFile,
      logFile: settings.logFile && !logFileProblem ? settings.logFile : null,
    });
  });
}

main();

// Loaded with `node --import ./src/instrument.mjs src/server.js`: the OpenTelemetry SDK and
// Sentry must be set up before Express and http are loaded, so their instrumentations can
// patch them. @sentry/node 11 documents --import (its module hooks are ESM loader hooks).
//
// Everything comes from the environment (docs/contract.md section 1): OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG) and OTEL_EXPORTER_OTLP_* are read by the
// SDK itself. OTEL_METRICS_EXPORTER=none and OTEL_LOGS_EXPORTER=none (the env file's) keep
// OTLP to traces: metrics are scraped from /metrics, logs tailed from the log file.
//
// The packages are loaded through require, as the app (CommonJS) loads them: one copy of each
// SDK in the process.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { getNodeAutoInstrumentations } = require('@opentelemetry/auto-instrumentations-node');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { ConfigError, loadSettings } = require('./config.js');
const reporting = require('./reporting.js');
const state = require('./startup.js');

// Without an endpoint nothing is exported, but spans are still made (the log lines carry their
// ids): the SDK registers a tracer provider only when it has a span processor.
const keepSpansLocal = {
  onStart() {}, onEnd() {}, forceFlush: async () => {}, shutdown: async () => {},
};

try {
  const settings = loadSettings();
  state.settings = settings;
  const sdk = new NodeSDK({
    // Fills only what OTEL_RESOURCE_ATTRIBUTES lacks (e.g. a version given as SENTRY_RELEASE alone).
    resource: resourceFromAttributes({
      'service.name': settings.serviceName,
      'service.version': settings.version,
      'deployment.environment': settings.environment,
    }),
    ...(settings.otlpEndpoint ? { traceExporter: new OTLPTraceExporter() } : { spanProcessors: [keepSpansLocal] }),
    instrumentations: [getNodeAutoInstrumentations({
      // Health and metrics probes make no span (the contract's "not instrumented").
      '@opentelemetry/instrumentation-http': {
        ignoreIncomingRequestHook: (req) => ['/health', '/metrics'].includes((req.url || '').split('?')[0]),
        // Sentry's own envelope uploads would be CLIENT spans in the failing request's trace
        // (seen: `POST` to the DSN's host), and in the span metrics as the backend's calls.
        ignoreOutgoingRequestHook: (req) => /\/api\/\d+\/envelope\//.test(req.path || ''),
      },
      // One SERVER span per request: Express's middleware and handler layers would each add
      // a span, naming the framework's internals rather than the request. Express 5 routes
      // with the `router` package, which has an instrumentation of its own. The app names the
      // route of the SERVER span itself (app.js).
      '@opentelemetry/instrumentation-express': { enabled: false },
      '@opentelemetry/instrumentation-router': { enabled: false },
      // The app writes the contract's traceId/spanId itself; OTLP logs are off.
      '@opentelemetry/instrumentation-winston': { disableLogCorrelation: true, disableLogSending: true },
      // File system and DNS spans are noise for this service.
      '@opentelemetry/instrumentation-fs': { enabled: false },
      '@opentelemetry/instrumentation-dns': { enabled: false },
      '@opentelemetry/instrumentation-net': { enabled: false },
      '@opentelemetry/instrumentation-runtime-node': { enabled: false },
    })],
  });
  sdk.start();
  state.sdk = sdk;
  [state.sentry, state.sentryProblem] = reporting.initSentry(settings);
} catch (err) {
  // server.js logs it and exits 2.
  if (!(err instanceof ConfigError)) throw err;
  state.configError = err;
}

'use strict';
// Settings, read only from the environment: the systemd unit loads /etc/sentinel/backend.env
// (written by the toolkit's `backend` role) and nothing else configures the service.
// docs/contract.md section 1 lists every variable.

const DEFAULTS = {
  port: 3000,
  faultsFile: '/var/lib/sentinel/faults.json',
  logFile: '/var/log/sentinel/backend.log',
  serviceName: 'sentinel-backend',
  environment: 'development',
  version: '0.0.0-dev',
};

class ConfigError extends Error {}

function parseResourceAttributes(raw) {
  const attributes = {};
  for (const pair of (raw || '').split(',')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    const key = pair.slice(0, at).trim();
    if (!key) continue;
    try {
      attributes[key] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      attributes[key] = pair.slice(at + 1).trim();
    }
  }
  return attributes;
}

function optional(env, name) {
  const value = (env[name] || '').trim();
  return value || null;
}

function port(env) {
  const raw = optional(env, 'PORT');
  if (raw === null) return DEFAULTS.port;
  // 0 asks the kernel for a free port; tests read the port back from the "listening" line.
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) throw new ConfigError(`PORT must be an integer 0..65535, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function loadSettings(env = process.env) {
  const resource = parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES);
  const serviceName = optional(env, 'OTEL_SERVICE_NAME') || resource['service.name'] || DEFAULTS.serviceName;
  const environment = resource['deployment.environment.name'] || resource['deployment.environment']
    || optional(env, 'SENTRY_ENVIRONMENT') || DEFAULTS.environment;
  const version = resource['service.version'] || optional(env, 'SENTRY_RELEASE') || DEFAULTS.version;
  return {
    host: optional(env, 'HOST') || '0.0.0.0',
    port: port(env),
    serviceName,
    environment,
    version,
    // The signal-specific variable also switches export on: the exporter honours it.
    otlpEndpoint: optional(env, 'OTEL_EXPORTER_OTLP_ENDPOINT') || optional(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'),
    sentryDsn: optional(env, 'SENTRY_DSN'),
    sentryEnvironment: optional(env, 'SENTRY_ENVIRONMENT') || environment,
    sentryRelease: optional(env, 'SENTRY_RELEASE') || version,
    faultsFile: optional(env, 'SENTINEL_FAULTS_FILE') || DEFAULTS.faultsFile,
    // Unset: the default file; set but empty: no file (stdout only).
    logFile: env.SENTINEL_LOG_FILE === undefined ? DEFAULTS.logFile : optional(env, 'SENTINEL_LOG_FILE'),
  };
}

module.exports = { ConfigError, DEFAULTS, loadSettings, parseResourceAttributes };

'use strict';
// What instrument.mjs set up, for server.js: the settings (or why they were refused), the
// OpenTelemetry SDK (to flush at shutdown) and whether Sentry is on.
module.exports = { settings: null, configError: null, sdk: null, sentry: false, sentryProblem: null };

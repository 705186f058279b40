from __future__ import annotations

import re
from dataclasses import dataclass, field

from roles._schema import SettingsError, check_duration, check_port, check_url, duration_seconds

_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+$")
_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9_-]{0,79}$")
_SECRET_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _check_secret_name(key: str, value: str) -> None:
    if not _SECRET_NAME.match(value):
        raise SettingsError(key, f"{value!r} is not a secret name", "name an environment variable such as SENTINEL_SLACK_WEBHOOK_URL, never the value")


@dataclass(frozen=True)
class SlackReceiver:
    """A Slack channel reached through an incoming webhook; the webhook URL is a secret."""

    channel: str
    webhook_url_secret: str

    def validate(self, prefix: str) -> None:
        if not _CHANNEL.match(self.channel):
            raise SettingsError(f"{prefix}.channel", f"{self.channel!r} is not a Slack channel", 'write it like "#alerts"')
        _check_secret_name(f"{prefix}.webhook_url_secret", self.webhook_url_secret)


@dataclass(frozen=True)
class EmailReceiver:
    """The ops mailbox that gets the daily digest, through an SMTP smarthost."""

    to: str = "ops@sentinel.internal"
    from_address: str = "alertmanager@sentinel.internal"
    smarthost: str = "smtp.sentinel.internal:587"
    auth_username: str | None = "alertmanager@sentinel.internal"
    auth_password_secret: str = "SENTINEL_SMTP_PASSWORD"  # needed only with auth_username
    require_tls: bool = True

    def validate(self, prefix: str) -> None:
        for key in ("to", "from_address"):
            if not _EMAIL.match(getattr(self, key)):
                raise SettingsError(f"{prefix}.{key}", f"{getattr(self, key)!r} is not an email address", "write one address such as ops@example.org")
        if not _SMARTHOST.match(self.smarthost):
            raise SettingsError(f"{prefix}.smarthost", f"{self.smarthost!r} is not host:port", 'write it like "smtp.example.org:587"')
        check_port(f"{prefix}.smarthost", int(self.smarthost.rsplit(":", 1)[1]))
        _check_secret_name(f"{prefix}.auth_password_secret", self.auth_password_secret)


@dataclass(frozen=True)
class PagerDutyReceiver:
    """PagerDuty Events API v2; the integration's routing key is a secret."""

    enabled: bool = False
    routing_key_secret: str = "SENTINEL_PAGERDUTY_ROUTING_KEY"
    url: str | None = None  # Events API endpoint; None = Alertmanager's default (events.pagerduty.com)

    def validate(self, prefix: str) -> None:
        _check_secret_name(f"{prefix}.routing_key_secret", self.routing_key_secret)
        if self.url is not None:
            check_url(f"{prefix}.url", self.url)


@dataclass(frozen=True)
class RouteTiming:
    """Alertmanager's timers for one severity.

    group_wait: how long the first notification of a new group waits for more alerts;
    group_interval: how often a group's changes are sent (the batch period);
    repeat_interval: how often a still-firing group is sent again.
    """

    group_wait: str
    group_interval: str
    repeat_interval: str

    def validate(self, prefix: str) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            check_duration(f"{prefix}.{key}", getattr(self, key), minimum="1s")
        if duration_seconds(self.repeat_interval) < duration_seconds(self.group_interval):
            raise SettingsError(f"{prefix}.repeat_interval", "is shorter than group_interval", "use at least the group_interval")


@dataclass(frozen=True)
class AlertingSettings:
    """Alert delivery: Alertmanager on the `monitoring` hosts, its receivers and routes.

    The defaults are production's: critical alerts go to Slack #critical-alerts at
    once (and to PagerDuty where `pagerduty.enabled`), repeated hourly while
    unresolved; warnings to Slack #alerts batched every 15 minutes; info alerts in
    a daily email digest. Secrets are named, never given: *_secret keys name an
    environment variable or a file in $SENTINEL_SECRETS_DIR.
    """

    listen_port: int = 9093
    cluster_port: int = 9094  # gossip between the monitoring hosts' Alertmanagers
    retention: str = "120h"  # how long silences and notification state are kept
    runbook_base_url: str = "https://git.sentinel.internal/sentinel/observability/-/blob/main"
    grafana_url: str | None = None  # default: http://<first monitoring host>:3000
    slack_critical: SlackReceiver = field(default_factory=lambda: SlackReceiver("#critical-alerts", "SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"))
    slack_warning: SlackReceiver = field(default_factory=lambda: SlackReceiver("#alerts", "SENTINEL_SLACK_ALERTS_WEBHOOK_URL"))
    email: EmailReceiver = field(default_factory=EmailReceiver)
    pagerduty: PagerDutyReceiver = field(default_factory=PagerDutyReceiver)
    critical: RouteTiming = field(default_factory=lambda: RouteTiming("10s", "5m", "1h"))
    warning: RouteTiming = field(default_factory=lambda: RouteTiming("1m", "15m", "4h"))
    info: RouteTiming = field(default_factory=lambda: RouteTiming("1m", "24h", "24h"))
    # Who evaluates the catalog: "prometheus" (default) or "grafana" (roles/alerting/evaluator.py).
    evaluator: str | list[str] = "prometheus"

    def validate(self, prefix: str) -> None:
        self.chosen_evaluator(prefix)
        check_port(f"{prefix}.listen_port", self.listen_port)
        check_port(f"{prefix}.cluster_port", self.cluster_port)
        check_duration(f"{prefix}.retention", self.retention, minimum="1h")
        check_url(f"{prefix}.runbook_base_url", self.runbook_base_url)
        if self.grafana_url is not None:
            check_url(f"{prefix}.grafana_url", self.grafana_url)
        # Critical alerts must reach people within 5 minutes of firing.
        if duration_seconds(self.critical.group_wait) > 60:
            raise SettingsError(f"{prefix}.critical.group_wait", f"{self.critical.group_wait} delays pages", "use 1m or less")

    def chosen_evaluator(self, prefix: str = "alerting") -> str:
        """"prometheus" or "grafana"; refuses both (every alert would page twice)."""
        from roles._model import SettingsError as ModelError
        from roles.alerting.evaluator import choose

        try:
            return choose(self.evaluator, prefix)
        except ModelError as err:
            raise SettingsError(err.key, err.problem, err.fix) from None

    def secrets(self) -> dict[str, str]:
        """Secret name per file under /etc/alertmanager/secrets, for the enabled receivers."""
        files = {
            "slack-critical-webhook-url": self.slack_critical.webhook_url_secret,
            "slack-alerts-webhook-url": self.slack_warning.webhook_url_secret,
        }
        if self.email.auth_username:
            files["smtp-password"] = self.email.auth_password_secret
        if self.pagerduty.enabled:
            files["pagerduty-routing-key"] = self.pagerduty.routing_key_secret
        return files

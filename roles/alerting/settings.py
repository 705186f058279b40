from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from roles._model import Bool, Duration, HostPort, HttpUrl, Model, Port, SecretName, SettingsError, Text, duration_seconds, matching
from roles.alerting.evaluator import Evaluator


def _at_least(minimum: str):
    def check(value: str) -> str:
        if duration_seconds(value) < duration_seconds(minimum):
            raise ValueError(f"{value} is shorter than the minimum {minimum}. Fix: use {minimum} or more")
        return value

    return check


Email = matching("email address", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+", "write one address such as ops@example.org")
Login = matching("SMTP login", r"[A-Za-z0-9._%+@-]{1,254}", "use the account name or address, e.g. alertmanager@example.org")
Channel = matching("Slack channel", r"#[a-z0-9][a-z0-9_-]{0,79}", 'write it like "#alerts"')
Timer = Annotated[Duration, AfterValidator(_at_least("1s"))]


class SlackReceiver(Model):
    """A Slack channel reached through an incoming webhook; the webhook URL is a secret."""

    channel: Channel = Field(description="The channel the webhook posts to, e.g. #alerts.")
    webhook_url_secret: SecretName = Field(description="Secret holding the incoming webhook URL (https://hooks.slack.com/services/...).")


class EmailReceiver(Model):
    """The ops mailbox that gets the daily digest, through an SMTP smarthost."""

    to: Email = Field("ops@sentinel.internal", description="Recipient of the daily info digest.")
    from_address: Email = Field("alertmanager@sentinel.internal", description="Sender address.")
    smarthost: HostPort = Field("smtp.sentinel.internal:587", description="SMTP server as host:port.")
    auth_username: Login | None = Field("alertmanager@sentinel.internal", description="SMTP login; unset = no authentication.")
    auth_password_secret: SecretName = Field("SENTINEL_SMTP_PASSWORD", description="Secret holding the SMTP password (needed only with auth_username).")
    require_tls: Bool = Field(True, description="Refuse to send without STARTTLS (kept on outside the lab when auth_username is set: the password).")


class PagerDutyReceiver(Model):
    """PagerDuty Events API v2; the integration's routing key is a secret."""

    enabled: Bool = Field(False, description="Page on critical alerts (prod sets it).")
    routing_key_secret: SecretName = Field("SENTINEL_PAGERDUTY_ROUTING_KEY", description="Secret holding the Events API v2 routing key (32 characters).")
    url: HttpUrl | None = Field(None, description="Events API endpoint; unset = Alertmanager's default (events.pagerduty.com). https outside the lab.")


class Heartbeat(Model):
    """The dead man's switch: Alertmanager calls an external heartbeat service while the
    always-firing Watchdog alert reaches it, and that service pages when the calls stop.

    The service is set up outside the toolkit (healthchecks.io, Dead Man's Snitch...): give its
    check a period of 2 x `repeat_interval` and a grace of `repeat_interval`, and let it page
    through a path that does not depend on this stack (its own PagerDuty or SMS integration).
    docs/alerting.md, "Watching the watchers", has the arithmetic.
    """

    url_secret: SecretName = Field("SENTINEL_HEARTBEAT_URL", description="Secret holding the heartbeat (ping) URL of the external service.")
    group_interval: Timer = Field("30s", description="How often Alertmanager looks at the Watchdog's group again.")
    repeat_interval: Timer = Field("1m", description="How often the heartbeat URL is called while the Watchdog fires (5m at most).")
    waived: Text | None = Field(
        None,
        description="Why this environment has no dead man's switch. Unset (the default), the heartbeat URL is required: "
        "without it, a dead Prometheus or Alertmanager pages no one.",
    )

    @model_validator(mode="after")
    def _calls_often_enough(self):
        if duration_seconds(self.repeat_interval) < duration_seconds(self.group_interval):
            raise SettingsError("repeat_interval", "is shorter than group_interval", "use at least the group_interval")
        if duration_seconds(self.repeat_interval) > 300:
            raise SettingsError(
                "repeat_interval", f"{self.repeat_interval} makes the switch page more than 5 minutes after the monitoring dies", "use 5m or less (1m is the default)"
            )
        if self.waived is not None and len(self.waived.strip()) < 10:
            raise SettingsError("waived", "is not a reason", 'say why in a sentence, e.g. "dev: no one is paged for dev"')
        return self

    @property
    def enabled(self) -> bool:
        return self.waived is None


class RouteTiming(Model):
    """Alertmanager's timers for one severity."""

    group_wait: Timer = Field(description="How long the first notification of a new group waits for more alerts.")
    group_interval: Timer = Field(description="How often a group's changes are sent (the batch period).")
    repeat_interval: Timer = Field(description="How often a still-firing group is sent again (at least group_interval).")

    @model_validator(mode="after")
    def _repeat_after_group(self):
        if duration_seconds(self.repeat_interval) < duration_seconds(self.group_interval):
            raise SettingsError("repeat_interval", "is shorter than group_interval", "use at least the group_interval")
        return self


class AlertingSettings(Model):
    """Alert delivery: Alertmanager on the `monitoring` hosts, its receivers and routes.

    The defaults are production's: critical alerts go to Slack #critical-alerts at
    once (and to PagerDuty where `pagerduty.enabled`), repeated hourly while
    unresolved; warnings to Slack #alerts batched every 15 minutes; info alerts in
    a daily email digest. Secrets are named, never given: *_secret keys name an
    environment variable or a file in $SENTINEL_SECRETS_DIR.
    """

    listen_port: Port = Field(9093, description="Alertmanager's web and API port.")
    cluster_port: Port = Field(9094, description="Gossip port between the monitoring hosts' Alertmanagers.")
    # Each Alertmanager of a cluster waits its position (its peer name's rank) x this before it
    # notifies, so the first one's notification log reaches the others by gossip first. It must
    # cover one notification's delivery (the receivers' own timeouts) plus a gossip round; the
    # price is that a dead first peer delays a notification by up to this much.
    cluster_peer_timeout: Timer = Field(
        "15s", description="With several monitoring hosts: how long each Alertmanager waits per position before notifying."
    )
    cluster_settle_timeout: Timer = Field(
        "1m", description="With several monitoring hosts: how long a starting Alertmanager waits at most for the cluster's state before notifying."
    )
    lab_rule_for_at_most: Timer | None = Field(
        None,
        description="LAB ONLY (preflight refuses it elsewhere): every alert rule's `for` is cut to at most this, so the "
        "lab's drills fire within seconds. The catalog's own `for` is proven by its promtool fixtures and measured by "
        "`make bench-alerting`, which converges without it.",
    )
    retention: Annotated[Duration, AfterValidator(_at_least("1h"))] = Field(
        "120h", description="How long silences and notification state are kept."
    )
    runbook_base_url: HttpUrl = Field(
        "https://git.sentinel.internal/sentinel/observability/-/blob/main", description="Base of the runbook links in notifications."
    )
    grafana_url: HttpUrl | None = Field(None, description="Base of dashboard links; unset = grafana.root_url, else https://<the monitoring host>:3000.")
    slack_critical: SlackReceiver = Field(
        SlackReceiver(channel="#critical-alerts", webhook_url_secret="SENTINEL_SLACK_CRITICAL_WEBHOOK_URL"),
        description="Where critical alerts go on Slack.",
    )
    slack_warning: SlackReceiver = Field(
        SlackReceiver(channel="#alerts", webhook_url_secret="SENTINEL_SLACK_ALERTS_WEBHOOK_URL"),
        description="Where warnings go on Slack.",
    )
    email: EmailReceiver = Field(EmailReceiver(), description="The daily email digest of info alerts.")
    pagerduty: PagerDutyReceiver = Field(PagerDutyReceiver(), description="Paging for critical alerts.")
    heartbeat: Heartbeat = Field(Heartbeat(), description="The dead man's switch: the Watchdog alert calls an external heartbeat service.")
    # group_interval is short for criticals: an alert that returns while its resolved group
    # still exists waits for the group's next tick, not group_wait. 30s keeps every critical
    # alert's returning worst case within the 4-minute budget (p95 latency: 220 s; 250 s with
    # 1m); docs/alerting.md, "A returning incident".
    critical: RouteTiming = Field(
        RouteTiming(group_wait="10s", group_interval="30s", repeat_interval="1h"), description="Timers of critical alerts."
    )
    warning: RouteTiming = Field(
        RouteTiming(group_wait="1m", group_interval="15m", repeat_interval="4h"), description="Timers of warnings."
    )
    info: RouteTiming = Field(
        RouteTiming(group_wait="1m", group_interval="24h", repeat_interval="24h"), description="Timers of info alerts (the digest)."
    )
    evaluator: Evaluator = Field(
        "prometheus",
        description="Who evaluates the catalog and notifies: prometheus (Prometheus + Alertmanager) or grafana "
        "(Grafana-managed rules and contact points; Prometheus gets no rules). Naming both is refused: every alert would page twice.",
    )

    @model_validator(mode="after")
    def _pages_in_time(self):
        # Critical alerts must reach people within 5 minutes of firing.
        if duration_seconds(self.critical.group_wait) > 60:
            raise SettingsError("critical.group_wait", f"{self.critical.group_wait} delays pages", "use 1m or less")
        # A critical alert that returns soon after a resolve waits for its group's next tick: at
        # 1m the slowest (p95 latency) still pages within the operators' 5 minutes (250 s).
        if duration_seconds(self.critical.group_interval) > 60:
            raise SettingsError(
                "critical.group_interval", f"{self.critical.group_interval} delays the page of an incident that returns", "use 1m or less"
            )
        return self

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
        if self.heartbeat.enabled:
            files["heartbeat-url"] = self.heartbeat.url_secret
        return files

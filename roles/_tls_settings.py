"""Settings of TLS and client identity (every host): the leaves' lifetime and renewal window.

The environment CA (roles/_pki.py) issues each host's certificates with the lifetime and
renewal window of that host's `tls` block; roles/_tls.py hands them over. The defaults are
issue 22's: 30 days, renewed by any converge in the last 10. Rules:

- `lifetime_days` from 1 to 397: under a day no converge cadence keeps up; 397 is the
  CA/Browser Forum's ceiling for a TLS leaf, and longer-lived keys defeat short-lived certificates.
- `renew_within_days` at least 1 and shorter than the lifetime: at 0 a certificate would be
  renewed only once expired (an outage), and a window as long as the lifetime would renew it
  on every converge (a second converge would change something).
- `enabled` only true: every listener of the stack requires TLS and client certificates and
  its clients use https; there is no plain-text mode to switch to (docs/tls.md). In prod and
  staging plain text would also carry logins, tokens and alert payloads in clear
  (roles/_settings.py words the refusal per environment).

Certificate names come from the topology only (roles/_tls.py `server_names`): there is no
setting for extra names, so a name the topology does not know can never be issued.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, Field, Strict, model_validator

from roles._model import Bool, Model, SettingsError

# The CA/Browser Forum's maximum TLS leaf validity (398 days, Apple's 397): longer is refused.
MAX_LIFETIME_DAYS = 397
DEFAULT_LIFETIME_DAYS = 30
DEFAULT_RENEW_WITHIN_DAYS = 10


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _int_1_to_397(value: int) -> int:
    if value < 1:
        raise ValueError(
            f"{_days(value)} is under a day. Fix: set tls.lifetime_days to 1 or more "
            f"({DEFAULT_LIFETIME_DAYS}, the default, renewed by any converge in its last {DEFAULT_RENEW_WITHIN_DAYS})"
        )
    if value > MAX_LIFETIME_DAYS:
        raise ValueError(
            f"{_days(value)} is over {MAX_LIFETIME_DAYS}, the longest a TLS certificate may live (CA/Browser Forum). "
            f"Fix: set tls.lifetime_days to {MAX_LIFETIME_DAYS} or less ({DEFAULT_LIFETIME_DAYS} is the default)"
        )
    return value


def _int_at_least_1(value: int) -> int:
    if value < 1:
        raise ValueError(
            f"{_days(value)} would renew a certificate only once it has expired. "
            f"Fix: set tls.renew_within_days to 1 or more ({DEFAULT_RENEW_WITHIN_DAYS}, the default), shorter than tls.lifetime_days"
        )
    return value


LifetimeDays = Annotated[int, Strict(), AfterValidator(_int_1_to_397)]
RenewWithinDays = Annotated[int, Strict(), AfterValidator(_int_at_least_1)]


class TlsSettings(Model):
    """TLS on the listeners other hosts reach, with certificates from the environment CA (docs/tls.md)."""

    enabled: Bool = Field(
        True,
        description="TLS and client certificates on Prometheus, Alertmanager and node_exporter. Only true: "
        "the roles have no plain-text mode (preflight refuses false, in prod and staging above all).",
    )
    lifetime_days: LifetimeDays = Field(
        DEFAULT_LIFETIME_DAYS,
        description=f"How long a certificate the environment CA issues lives, in days (1 to {MAX_LIFETIME_DAYS}). "
        "A certificate issued for another lifetime is issued again at the next converge; an operator's CA "
        "(SENTINEL_TLS_CA_CERT) must outlive a certificate issued now.",
    )
    renew_within_days: RenewWithinDays = Field(
        DEFAULT_RENEW_WITHIN_DAYS,
        description="A converge issues a certificate again once it has fewer than this many days left "
        "(at least 1, shorter than lifetime_days). Converge at least this often.",
    )

    @model_validator(mode="after")
    def _window_inside_the_lifetime(self):
        if self.renew_within_days >= self.lifetime_days:
            fix = (
                f"set tls.renew_within_days below tls.lifetime_days, e.g. {max(1, self.lifetime_days // 3)} "
                "(a third of the lifetime, as the defaults 10 of 30)"
                if self.lifetime_days >= 2
                else "a lifetime of 1 day leaves no whole-day window: set tls.lifetime_days to 2 or more"
            )
            raise SettingsError(
                "renew_within_days",
                f"{_days(self.renew_within_days)} is not shorter than tls.lifetime_days ({self.lifetime_days}): "
                "every converge would issue every certificate again",
                fix,
            )
        return self

    @property
    def lifetime(self) -> dt.timedelta:
        return dt.timedelta(days=self.lifetime_days)

    @property
    def renew_before(self) -> dt.timedelta:
        return dt.timedelta(days=self.renew_within_days)

"""VictoriaLogs' flags as an EnvironmentFile (`-envflag.enable`), and its check by the binary: one format for the
single node, the cluster's storage nodes and its access tier (roles/victorialogs/cluster.py)."""

from __future__ import annotations

import re

from roles._service import quoting
from roles._service.quoting import QuotingError

BINARY = "victoria-logs-prod"
# Flag values come from the environment as VL_<flag>, dots as underscores.
ENV_PREFIX = "VL_"
# Every VictoriaLogs unit's command: its flags come from its EnvironmentFile ({bin}: the release's directory).
EXEC_START = (f"{{bin}}/{BINARY}", "-envflag.enable", f"-envflag.prefix={ENV_PREFIX}")

# Flag values the check below can pass through `env` unquoted (see check_flags_command).
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._/:+@,-]+")


def env_file(flag_values: dict[str, str], what: str) -> str:
    """`flag_values` (name without "-": value) as an EnvironmentFile of VL_<flag> (dots as underscores)."""
    values = {}
    for name, value in flag_values.items():
        if not _PLAIN_VALUE.fullmatch(value):
            raise QuotingError(f"{what}: -{name}: the value needs quoting, which the flag check cannot read")
        values[f"{ENV_PREFIX}{name.replace('.', '_')}"] = value
    return quoting.env_file(values, what, header="Managed by the Sentinel observability toolkit: VictoriaLogs flags (-envflag.enable).")


def check_flags_command() -> str:
    """Shell command checking a staged flags file with the new binary ({bin}, {path} as in ConfigFile).

    The file's lines go to `env -i` as words (no shell sources it); every value is
    plain (flags_env refuses any other), so a line is exactly one NAME=value word.
    The binary parses every VL_* value as its flag, exits 1 on a bad one, and exits
    0 at -version before it touches any data.
    """
    return f"env -i $(grep -v '^#' {{path}}) {{bin}}/{BINARY} -envflag.enable -envflag.prefix={ENV_PREFIX} -version"

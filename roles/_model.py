"""The base of every settings model: pydantic v2, strict about keys and values.

Every role declares its settings as a `Model` subclass in `roles/<role>/settings.py`,
using the constrained types below for anything that reaches a host. A value that
would need escaping to be safe somewhere (a newline in a path, a `$(...)` in a
name) is refused here, before any host is contacted; the building block still
quotes everything it writes, so the two guards never rely on each other.

`settings_error()` turns pydantic's error locations into the project's one error
style: the dotted key, the problem, and the fix.
"""

from __future__ import annotations

import difflib
import functools
import posixpath
import re
import shutil
import subprocess
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

# --- the error style ---------------------------------------------------------


# What a refusal must never print back: a URL's userinfo (a password), cloud access keys.
_SECRET_SHAPES = (
    # (A placeholder such as <public_key>@ in a fix is documentation, not a secret.)
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(?!<[a-z_]+>@)[^/@\s'\"]+@"), r"\1<userinfo hidden>@"),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), "<access key hidden>"),
    (re.compile(r"\b(?:ghp|gho|ghs|github_pat|glpat|glsa|xox[abp])_?[A-Za-z0-9_]{16,}"), "<token hidden>"),
    # Slack's tokens (xoxb-123-456-abc...) and an incoming webhook's path, which is its secret.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), "<token hidden>"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+"), r"\1<webhook hidden>"),
)


def shown(text: str) -> str:
    """`text` as a refusal may print it: secret-shaped parts hidden, control characters escaped."""
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    # A pasted terminal escape could clear the screen and print a fake "all checks passed".
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


class SettingsError(ValueError):
    """Bad inventory or group data. `key` is the dotted path, `fix` says what to do.

    All three are shown with `shown()`: no secret-shaped value and no control character
    reaches the operator's terminal or a CI log.
    """

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = shown(key), shown(problem), shown(fix)
        super().__init__(f"{self.key}: {self.problem}. Fix: {self.fix}")


class Model(BaseModel):
    """A settings block: unknown keys are refused, instances never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SettingsErrors(SettingsError):
    """Several problems found in one pass, reported at once (grouped by host and key, then the count).

    `key`, `problem` and `fix` are the first problem's, so a caller that handles one still can.
    """

    def __init__(self, errors: list[SettingsError]):
        # In the order found; a SettingsErrors among them is flattened into its problems.
        self.errors = [e for error in errors for e in (error.errors if isinstance(error, SettingsErrors) else [error])]
        first = self.errors[0]
        self.key, self.problem, self.fix = first.key, first.problem, first.fix
        lines = [str(e) for e in self.errors]
        ValueError.__init__(self, "\n".join(lines) + f"\n{len(lines)} problems, each with its fix above")

    @staticmethod
    def raise_if_any(errors: list[SettingsError]) -> None:
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise SettingsErrors(errors)

    @staticmethod
    def of(error: SettingsError) -> list[SettingsError]:
        """The single problems of `error`: its list when it holds several, else itself."""
        return list(error.errors) if isinstance(error, SettingsErrors) else [error]


def _dotted(prefix: str, loc: tuple) -> str:
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last part of `loc`."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            # Lists and dicts of models: look through to the item type.
            args = getattr(current, "__args__", ())
            current = args[-1] if args else None
            if isinstance(part, int):
                continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        while getattr(current, "__origin__", None) is not None and not (
            isinstance(current, type) and issubclass(current, BaseModel)
        ):
            args = [a for a in getattr(current, "__args__", ()) if a is not type(None)]
            current = args[-1] if args else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def settings_error(err: ValidationError, model: type[BaseModel], prefix: str) -> SettingsError:
    """The first error of `err` in the project's style: key, problem, fix."""
    return settings_errors(err, model, prefix)[0]


def settings_errors(err: ValidationError, model: type[BaseModel], prefix: str) -> list[SettingsError]:
    """Every error of `err` in the project's style, one per key, in pydantic's order (field by field)."""
    found: dict[str, SettingsError] = {}
    for detail in err.errors(include_url=False):
        for problem in _problems(detail, model, prefix):
            found.setdefault(problem.key, problem)  # a union's members each report the same key
    return list(found.values())


def _problems(first: dict, model: type[BaseModel], prefix: str) -> list[SettingsError]:
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, SettingsErrors):
        # A model's cross-field checks report all they found at once.
        key = _dotted(prefix, tuple(first["loc"]))
        return [SettingsError(f"{key}.{e.key}" if e.key else key, e.problem, e.fix) for e in raised.errors]
    return [_one_problem(first, model, prefix)]


def _one_problem(first: dict, model: type[BaseModel], prefix: str) -> SettingsError:
    loc = tuple(first["loc"])
    key = _dotted(prefix, loc)
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        holder = _model_at(model, loc)
        known = list(holder.model_fields) if holder else []
        # A model may name keys that moved: `MOVED_KEYS = {old key: where it lives now}`.
        moved: dict[str, str] = getattr(holder, "MOVED_KEYS", {}) if holder else {}
        if loc[-1] in moved:
            return SettingsError(key, f"this key moved to {moved[loc[-1]]}", f"set {moved[loc[-1]]} instead and remove {loc[-1]}")
        close = difflib.get_close_matches(str(loc[-1]), [*known, *moved], n=1)
        fix = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known)) or 'none'}"
        if close and close[0] in moved:
            fix += f" It moved: set {moved[close[0]]} instead"
        return SettingsError(key, "unknown key", fix)
    if kind == "missing":
        return SettingsError(key, "required key is missing", f"set {key} in group_data or the inventory")
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        return SettingsError(key, f"{value!r} is not allowed", f"use one of: {expected}")
    if kind in ("int_type", "int_parsing", "bool_type", "bool_parsing", "string_type", "float_type", "float_parsing", "dict_type", "list_type", "tuple_type", "model_type"):
        expected = {"int": "int", "boo": "bool", "str": "str", "flo": "float", "dic": "mapping", "lis": "list", "tup": "list", "mod": "mapping"}[kind[:3]]
        return SettingsError(key, f"expected {expected}, got {value!r}", f"set {key} to a {expected}")
    if kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        bound = next(iter(first.get("ctx", {}).values()), "")
        if isinstance(bound, float) and bound in (0.0, 1.0):
            return SettingsError(key, f"{value!r} is outside 0 to 1", "use a fraction such as 0.1")
        return SettingsError(key, f"{value!r}: {first['msg'].lower()}", "use a TCP port from 1 to 65535" if bound == 65535 or bound == 1 else f"use a value {first['msg'].lower()}")
    raised = first.get("ctx", {}).get("error")
    if isinstance(raised, SettingsError):
        # A rule across fields names the field it is about, relative to the model.
        return SettingsError(f"{key}.{raised.key}" if raised.key else key, raised.problem, raised.fix)
    message = first["msg"]
    # Our validators raise ValueError("problem. Fix: fix").
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if ". Fix: " in message:
        problem, fix = message.split(". Fix: ", 1)
        return SettingsError(key, problem, fix)
    return SettingsError(key, f"{value!r}: {message}", f"correct {key}")


def parse(model: type[BaseModel], data: Any, prefix: str) -> Any:
    """Validate `data` into `model`, raising `SettingsError` named after `prefix`."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as err:
        SettingsErrors.raise_if_any(settings_errors(err, model, prefix))
        raise  # pydantic reported no error: cannot happen


# --- constrained types -------------------------------------------------------
# Each validator raises ValueError("<problem>. Fix: <fix>"), which
# settings_error() splits into the project's error style.

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{value!r} holds a control character (newline, tab, ...). Fix: write it on one line, without control characters")
    return value


# Prometheus's duration grammar, units in descending order, each at most once.
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_UNIT_SECONDS = (31536000, 604800, 86400, 3600, 60, 1, 0.001)
MAX_DURATION_SECONDS = 10 * 31536000  # ten years: anything longer is a typo


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration such as "15d" or "1h30m"."""
    m = _DURATION.fullmatch(value)
    if not value or not m or not any(m.groups()):
        raise ValueError(value)
    return sum(int(n) * unit for n, unit in zip(m.groups(), _UNIT_SECONDS) if n)


def _duration(value: str, allow_zero: bool = False) -> str:
    try:
        seconds = duration_seconds(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not a duration. Fix: write it like \"30s\", \"15d\" or \"1h30m\" "
            "(units y, w, d, h, m, s, ms, largest first, each once)"
        ) from None
    if seconds <= 0 and not allow_zero:
        raise ValueError(f"{value!r} is zero. Fix: use a positive duration such as \"30s\" or \"15d\"")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{value!r} is longer than ten years. Fix: use a duration of at most 10y")
    return value


def _size(value: str) -> str:
    if value != "0" and not re.fullmatch(r"[1-9]\d*(B|KB|MB|GB|TB|PB|EB)", value):
        raise ValueError(f"{value!r} is not a size. Fix: write it like \"50GB\" or \"512MB\", or \"0\" for no limit")
    return value


def _url(schemes: tuple[str, ...]):
    pattern = re.compile(rf"({'|'.join(schemes)})://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~:/?#@!&'()*+,;=%\-]*)?")

    def check(value: str) -> str:
        _no_control(value)
        if not pattern.fullmatch(value) or re.search(r":(?!\d+(/|$))", value.split("://", 1)[1].split("/", 1)[0]):
            raise ValueError(f"{value!r} is not a URL. Fix: write a full URL such as {schemes[0]}://host:port/path")
        return value

    return check


def _abs_path(value: str) -> str:
    _no_control(value)
    if not value.startswith("/") or posixpath.normpath(value) != value or value == "/":
        raise ValueError(f"{value!r} is not a normalised absolute path. Fix: write it like /var/lib/<name> or /opt/<name>, without .., // or a trailing /")
    if not re.fullmatch(r"[A-Za-z0-9._/+@-]+", value):
        raise ValueError(f"{value!r} holds characters that need quoting (space, $, quotes, ...). Fix: use letters, digits and . _ - / + @ only")
    return value


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}", value):
        raise ValueError(f"{value!r} is not a name. Fix: use letters, digits, _ . - (starting with a letter or _), at most 63 characters")
    return value


# The toolkit's own settings that live in the environment but are not secrets.
_NOT_SECRETS = ("SENTINEL_SECRETS_DIR", "SENTINEL_INVENTORY", "SENTINEL_LAB_CACHE", "SENTINEL_PROMTOOL")


def _secret_name(value: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,127}", value):
        raise ValueError(
            f"{value[:12]!r}... is not a secret name. Fix: name the secret (an environment variable such as "
            "SENTRY_DSN, upper case, digits and _), never paste its value here"
        )
    # Any other variable of the controller (PATH, AWS_SECRET_ACCESS_KEY, a CI token) would be
    # shipped to a host: secrets are the toolkit's own names (.env.example) or SENTINEL_*.
    if value in _NOT_SECRETS or not (value.startswith("SENTINEL_") or value in ("SENTRY_DSN", "SENTRY_AUTH_TOKEN")):
        raise ValueError(
            f"{value!r} is not one of the toolkit's secret names: any variable of the controller would be shipped to a host. "
            "Fix: use a name from .env.example, or your own SENTINEL_<NAME>"
        )
    return value


def _label_value(value: str) -> str:
    return _no_control(value)


def _hostport(value: str) -> str:
    _no_control(value)
    m = re.fullmatch(r"(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]*):(\d{1,5})", value)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"{value!r} is not host:port. Fix: write it like host:port, e.g. smtp.example.org:587 or 0.0.0.0:4317")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
# A wait that may be none, such as an alert's `for: 0s`.
DurationOrZero = Annotated[str, AfterValidator(lambda value: _duration(value, allow_zero=True))]
Size = Annotated[str, AfterValidator(_size)]
# Numbers and switches are strict: "9090" or "no" in group data is a mistake, not a number or False.
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]
Int = Annotated[int, Strict()]
Bool = Annotated[bool, Strict()]
Fraction = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]
HttpUrl = Annotated[str, AfterValidator(_url(("http", "https")))]
HttpsUrl = Annotated[str, AfterValidator(_url(("https",)))]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
# The backend's log file: in a directory of its own under /var/log (the agent's group reads it).
LogFile = Annotated[
    str, AfterValidator(_abs_path),
    AfterValidator(lambda v: _under(posixpath.dirname(posixpath.normpath(v)), ("/var/log",), "a log directory", "/var/log/sentinel/backend.log") and v),
]
# A directory the role owns for its service: under DATA_PARENTS, never a system directory.
ServiceDir = Annotated[str, AfterValidator(_abs_path), AfterValidator(lambda v: _service_dir(v))]
Name = Annotated[str, AfterValidator(_name)]
SecretName = Annotated[str, AfterValidator(_secret_name)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
HostPort = Annotated[str, AfterValidator(_hostport)]
Text = Annotated[str, AfterValidator(_no_control)]


# Where a service's own data may live: a directory of its own under one of these. The roles
# chown and chmod it, make it the service user's home and add it to ReadWritePaths, so it
# may never be (or be above) a system directory.
DATA_PARENTS = ("/var/lib", "/srv", "/data", "/mnt")


def _under(value: str, parents: tuple[str, ...], what: str, example: str) -> str:
    path = posixpath.normpath(value)
    for parent in parents:
        if path.startswith(parent + "/") and len(path) > len(parent) + 1:
            return value
    raise ValueError(
        f"{value!r} is not {what} of its own: the deploy would take the directory over (owner, mode, the service's write access). "
        f"Fix: use a directory under {' or '.join(parents)}, e.g. {example}"
    )


def _service_dir(value: str) -> str:
    return _under(value, DATA_PARENTS, "a data directory", "/var/lib/<component>")


@functools.cache
def _systemd_calendar(value: str) -> str | None:
    """systemd's own verdict on an OnCalendar= value: None when it accepts it, else its message.

    Where systemd-analyze is missing (a controller that is not Linux), a pattern of the forms
    the toolkit documents is checked instead; the timer's unit is verified on the host anyway.
    """
    if shutil.which("systemd-analyze"):
        result = subprocess.run(["systemd-analyze", "calendar", value], capture_output=True, text=True, timeout=10)
        return None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["refused"])[-1]
    keyword = r"minutely|hourly|daily|weekly|monthly|quarterly|semiannually|yearly|annually"
    part = r"[0-9*][0-9*/,.~-]*"
    form = rf"(?:{keyword})|(?:[A-Za-z][A-Za-z,.]*\s+)?(?:{part}-{part}-{part}\s+)?{part}:{part}(?::{part})?(?:\s+UTC)?"
    return None if re.fullmatch(form, value) else "not a calendar specification"


def _on_calendar(value: str) -> str:
    _no_control(value)
    problem = _systemd_calendar(value)
    if problem:
        raise ValueError(
            f"{value!r} is not a systemd calendar specification ({problem}): the timer would be refused on the host. "
            'Fix: write it like "*-*-* 03:17:00" or "daily" (man systemd.time; check with systemd-analyze calendar)'
        )
    return value


# A systemd OnCalendar= value, checked by systemd-analyze where the controller has it.
OnCalendar = Annotated[str, AfterValidator(_on_calendar)]


def _relative_name(value: str) -> str:
    """A file or directory name inside an archive: relative, no `..`, nothing a shell would expand."""
    parts = value.split("/")
    if value.startswith("/") or any(p in ("", ".", "..") for p in parts) or not re.fullmatch(r"[A-Za-z0-9._+{}/-]+", value):
        raise ValueError(
            f"{value!r} is not a safe relative name. Fix: use letters, digits and . _ + - (and / between parts), "
            "never .., a leading /, spaces, $ or quotes"
        )
    return value


def matching(what: str, regex: str, fix: str) -> Any:
    """A string type whose whole value matches `regex`; else "'<value>' is not a <what>. Fix: <fix>".

    The reference (docs/settings.md) names the type `what`.
    """
    pattern = re.compile(regex)

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a {what}. Fix: {fix}")
        return value

    check.__name__ = what.replace(" ", "_")
    return Annotated[str, AfterValidator(check)]


RelativeName = Annotated[str, AfterValidator(_relative_name)]
Sha256 = matching("sha256 digest", r"[0-9a-f]{64}", "paste the 64 lower-case hex digits of the sum")
LabelName = matching("label name", r"[A-Za-z_][A-Za-z0-9_]{0,127}", "use letters, digits and _ (starting with a letter or _)")


def _hostname(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:]+\]?", value) or ".." in value:
        raise ValueError(f"{value!r} is not a host name or address. Fix: write it like mon1.prod.example.org or 10.0.0.11")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]

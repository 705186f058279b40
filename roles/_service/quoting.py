"""Escaping for every format a value reaches a host in: unit files, env files, shells.

Preflight (roles/preflight.py) refuses bad values with the key and the fix; this
module is the second wall: whatever reaches a unit file, an env file or a shell
command goes through the quoting its format needs, or is refused with
`QuotingError` when the format cannot carry it (control characters in a unit
file, a relative executable). Messages name what was refused, never the value,
because the value may be a secret.

systemd's rules (systemd.syntax(7), systemd.service(5), systemd.exec(5), the
parsers in src/basic/extract-word.c and env-file.c of systemd 252, Debian 12):

- Exec lines are split into words; a word may be wrapped in double quotes, and
  inside and outside quotes a backslash starts a C escape (`\\\\`, `\\"`). After
  splitting, each word has its specifiers resolved (`%%` is a literal `%`) and,
  on Exec lines only, environment variables (`$$` is a literal `$`).
- Path lists (ReadWritePaths=) are split and unquoted the same way, specifiers
  resolved, no variables.
- Single-value settings (WorkingDirectory=, EnvironmentFile=, Description=)
  take the rest of the line verbatim: no quoting, specifiers resolved, leading
  and trailing whitespace dropped, a trailing backslash continues the line.
  EnvironmentFile= is then expanded as a glob (execute.c), so `*?[\\` are refused there.
- An EnvironmentFile= line `KEY="value"` keeps everything between the quotes,
  where a backslash before one of ``"\\`$`` stands for that character. No
  variables are expanded, and no shell ever reads these files.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterable, Mapping

# Characters every format here takes as themselves, outside any quotes.
_PLAIN = re.compile(r"[A-Za-z0-9_./:,=@+()|^\[\]{}*?!~-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# useradd's portable names (NAME_REGEX of adduser, systemd's valid_user_group_name)
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_CAPABILITY = re.compile(r"CAP_[A-Z_]+")


class QuotingError(ValueError):
    """A value that its target format cannot carry safely; nothing was written."""


def refuse_control(value: str, what: str) -> str:
    """`value` unchanged, or QuotingError when it holds a control or invisible format character.

    Newlines, tabs, carriage returns, NUL, DEL, C1 controls, Unicode line and
    paragraph separators, the byte order mark and surrogates are refused: no
    unit file, env file or config here needs them, and each one can end a line
    or hide text from a reviewer.
    """
    if not isinstance(value, str):
        raise QuotingError(f"{what}: expected text, got {type(value).__name__}")
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Zl", "Zp") or char == "\ufeff":
            raise QuotingError(
                f"{what}: contains the control character U+{ord(char):04X}; "
                "remove line breaks, tabs and other control characters from the value"
            )
    return value


def _backslash_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")


def systemd_word(value: str, what: str, *, exec_line: bool = True) -> str:
    """One word of an Exec line (`exec_line`) or of a path list such as ReadWritePaths=.

    Plain words stay as they are; anything else is double-quoted with C escapes.
    `%` becomes `%%` (specifiers), and on Exec lines `$` becomes `$$`
    (environment variables), so systemd hands the program exactly `value`.
    """
    refuse_control(value, what)
    escaped = value.replace("%", "%%")
    if exec_line:
        escaped = escaped.replace("$", "$$")
    if escaped and _PLAIN.fullmatch(escaped):
        return escaped
    return '"' + _backslash_escape(escaped) + '"'


def systemd_exec(args: Iterable[str], what: str) -> list[str]:
    """The words of an Exec line; the first one must be an absolute executable path.

    systemd reads `-`, `@`, `:`, `+` and `!` in front of the executable as
    prefixes, and refuses executables with quotes or whitespace in their name,
    so the executable must be a plain absolute path.
    """
    args = list(args)
    if not args:
        raise QuotingError(f"{what}: no command")
    executable = refuse_control(args[0], f"{what}[0]")
    if not executable.startswith("/") or not _PLAIN.fullmatch(executable) or "%" in executable:
        raise QuotingError(f"{what}[0]: the executable must be an absolute path of letters, digits and ./_-")
    return [executable] + [systemd_word(arg, f"{what}[{i}]") for i, arg in enumerate(args[1:], 1)]


def systemd_path(value: str, what: str, *, globbed: bool = False) -> str:
    """An absolute path as the whole value of a setting (WorkingDirectory=, EnvironmentFile=).

    `globbed`: systemd expands the path as a glob (EnvironmentFile=), so glob
    characters and backslashes, which it cannot escape there, are refused.
    """
    refuse_control(value, what)
    if globbed and any(char in value for char in "*?[\\"):
        raise QuotingError(f"{what}: holds one of * ? [ \\, which systemd expands as a glob here; rename the file")
    if not value.startswith("/"):
        raise QuotingError(f"{what}: not an absolute path; write it from the root, e.g. /var/lib/<name>")
    if value != value.strip() or value.endswith("\\"):
        raise QuotingError(f"{what}: ends in whitespace or a backslash, which systemd would drop or join with the next line")
    return value.replace("%", "%%")


def systemd_text(value: str, what: str) -> str:
    """Free text as the whole value of a setting (Description=)."""
    refuse_control(value, what)
    if value != value.strip() or value.endswith("\\"):
        raise QuotingError(f"{what}: starts or ends in whitespace or ends in a backslash; trim it")
    return value.replace("%", "%%")


def systemd_account(value: str, what: str) -> str:
    """A user or group name (User=, Group=): the portable subset, nothing to escape."""
    if not isinstance(value, str) or not _ACCOUNT.fullmatch(value):
        raise QuotingError(f"{what}: not a system account name; use lowercase letters, digits, _ and - (at most 32)")
    return value


def systemd_capability(value: str, what: str) -> str:
    if not isinstance(value, str) or not _CAPABILITY.fullmatch(value):
        raise QuotingError(f"{what}: not a capability name such as CAP_NET_BIND_SERVICE")
    return value


def env_value(value: str, what: str) -> str:
    """A value of an EnvironmentFile= line: plain, or double-quoted with ``"\\`$`` escaped."""
    refuse_control(value, what)
    if value == "" or _PLAIN.fullmatch(value):  # `NAME=` is the empty string to systemd
        return value
    return '"' + re.sub(r'(["\\`$])', r"\\\1", value) + '"'


def env_file(values: Mapping[str, str], what: str, header: str = "") -> str:
    """An EnvironmentFile= for systemd: one `NAME=value` line per entry, quoted per systemd.

    `header` is a comment put first (each of its lines gets a `# `). The file is
    for systemd, and any program reading it parses it itself (`parse_env_file`):
    it is never sourced by a shell.
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, value in values.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise QuotingError(f"{what}: {name!r} is not an environment variable name")
        lines.append(f"{name}={env_value(value, f'{what}.{name}')}")
    return "".join(line + "\n" for line in lines)


def parse_env_file(text: str) -> dict[str, str]:
    """Read an env file the way systemd's EnvironmentFile= does (env-file.c, systemd 252).

    For programs and tests that need the values: comments (`#`, `;`), blank
    lines and lines without `=` are skipped; unquoted values lose leading and
    trailing whitespace and a backslash keeps the next character; single quotes
    keep everything verbatim; double quotes unescape ``"\\`$`` and keep any
    other backslash; a backslash before a newline joins lines outside single quotes.
    """
    values: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # start of a line: skip whitespace, comments, keyless lines
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            i = text.find("\n", i)
            i = n if i < 0 else i + 1
            continue
        eq = text.find("=", i)
        eol = text.find("\n", i)
        if eq < 0 or (0 <= eol < eq):
            i = n if eol < 0 else eol + 1
            continue
        key = text[i:eq].strip()
        i = eq + 1
        while i < n and text[i] in " \t\r":
            i += 1
        value: list[str] = []
        if i < n and text[i] == "'":
            end = text.find("'", i + 1)
            if end < 0:
                end = n
            value.append(text[i + 1 : end])
            i = end + 1
            rest_end = text.find("\n", i)
            i = n if rest_end < 0 else rest_end + 1
        elif i < n and text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt == "\n":
                        pass
                    elif nxt in '"\\`$':
                        value.append(nxt)
                    else:
                        value.append("\\" + nxt)
                    i += 2
                    continue
                value.append(text[i])
                i += 1
            i += 1
            rest_end = text.find("\n", i)
            i = n if rest_end < 0 else rest_end + 1
        else:
            trailing = 0  # whitespace at the end that is not escaped
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n:
                    if text[i + 1] != "\n":
                        value.append(text[i + 1])
                    trailing = 0
                    i += 2
                    continue
                value.append(text[i])
                trailing = trailing + 1 if text[i] in " \t\r" else 0
                i += 1
            if trailing:
                del value[-trailing:]
            i += 1
        values[key] = "".join(value)
    return values


def sh_quote(value: str) -> str:
    """One shell word holding exactly `value` (POSIX sh single quotes)."""
    return shlex.quote(value)


def sh_join(args: Iterable[str]) -> str:
    """A shell command line running exactly `args`; prefer argument lists where there is no shell."""
    return " ".join(shlex.quote(arg) for arg in args)

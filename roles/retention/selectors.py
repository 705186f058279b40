"""LogQL stream selectors: a small parser, and the overlap rules the retention policy needs.

The grammar is the stream selector of a LogQL query, the part a Loki
`retention_stream` rule holds:

    selector := "{" matcher ("," matcher)* "}"
    matcher  := label op string
    label    := [a-zA-Z_][a-zA-Z0-9_]*
    op       := "=" | "!=" | "=~" | "!~"
    string   := "double-quoted" (Go escapes: \\a \\b \\f \\n \\r \\t \\v \\\\ \\" \\xHH \\ooo \\uHHHH \\UHHHHHHHH)
              | `raw` (no escapes, as in LogQL)

Whitespace may separate tokens. As Loki does for retention selectors, at least one
matcher must refuse the empty string (`{stream=~".*"}` alone selects everything and
Loki refuses it). A label a stream does not have reads as "" (Prometheus matching).

Regular expressions: Loki uses Go's RE2, fully anchored, with `.` matching newlines.
This module uses RE2 itself (the `google-re2` binding): what RE2 refuses
(lookarounds, backreferences, possessive repeats...) is refused here with RE2's
own message, and `[[:alpha:]]` or `\\pL` mean what they mean to Loki.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import re2

OPERATORS = ("=~", "!~", "!=", "=")  # longest first, for the lexer
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}


class SelectorError(ValueError):
    """A selector that does not parse; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int):
        self.message, self.position = message, position
        super().__init__(f"{message} at column {position + 1}")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    @cached_property
    def _regex(self):
        return _re2(self.value)

    def matches(self, value: str) -> bool:
        """Whether a stream whose label `name` is `value` ("" when absent) passes this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{_quote(self.value)}"'


def _quote(value: str) -> str:
    """`value` as the inside of a double-quoted Go string (what `_string` reads back)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


_QUOTE_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


@dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]

    def __str__(self) -> str:
        """The canonical text: what a Loki role writes into `retention_stream`."""
        return "{" + ", ".join(map(str, self.matchers)) + "}"


def parse_selector(text: str) -> Selector:
    """Parse a LogQL stream selector such as `{service="sentinel-backend", stream=~"audit|security"}`."""
    if not isinstance(text, str):
        raise SelectorError(f"expected a string, got {type(text).__name__}", 0)
    pos = _skip_space(text, 0)
    pos = _expect(text, pos, "{")
    matchers: list[Matcher] = []
    while True:
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == "}" and not matchers:
            raise SelectorError("empty selector: write at least one label matcher", pos)
        matcher, pos = _matcher(text, pos)
        matchers.append(matcher)
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        pos = _expect(text, pos, "}")
        break
    pos = _skip_space(text, pos)
    if pos != len(text):
        raise SelectorError(f"unexpected {text[pos]!r} after the closing brace", pos)
    if all(m.matches("") for m in matchers):
        raise SelectorError(
            "every matcher also matches the empty string, so the selector matches every stream "
            '(Loki refuses it): add a matcher such as stream="app" or stream=~".+"',
            0,
        )
    return Selector(tuple(matchers))


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _expect(text: str, pos: int, char: str) -> int:
    if pos >= len(text):
        raise SelectorError(f"expected {char!r}, found the end of the selector", pos)
    if text[pos] != char:
        raise SelectorError(f"expected {char!r}, found {text[pos]!r}", pos)
    return pos + 1


def _matcher(text: str, pos: int) -> tuple[Matcher, int]:
    label = _LABEL.match(text, pos)
    if not label:
        found = repr(text[pos]) if pos < len(text) else "the end of the selector"
        raise SelectorError(f"expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), found {found}", pos)
    pos = _skip_space(text, label.end())
    op = next((o for o in OPERATORS if text.startswith(o, pos)), None)
    if op is None:
        found = repr(text[pos]) if pos < len(text) else "the end of the selector"
        raise SelectorError(f"expected one of = != =~ !~ after {label.group()!r}, found {found}", pos)
    value_pos = _skip_space(text, pos + len(op))
    value, pos = _string(text, value_pos)
    if op in ("=~", "!~"):
        _check_regex(value, value_pos)
    return Matcher(label.group(), op, value), pos


def _string(text: str, pos: int) -> tuple[str, int]:
    if pos >= len(text) or text[pos] not in "\"`":
        found = repr(text[pos]) if pos < len(text) else "the end of the selector"
        raise SelectorError(f'expected a quoted string ("..." or `...`), found {found}', pos)
    quote, start = text[pos], pos
    pos += 1
    if quote == "`":
        end = text.find("`", pos)
        if end < 0:
            raise SelectorError("unterminated `raw string`", start)
        return text[pos:end], end + 1
    out: list[str] = []
    while True:
        if pos >= len(text):
            raise SelectorError('unterminated "string"', start)
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\n":
            raise SelectorError('newline in a "string" (write \\n)', pos)
        if char != "\\":
            out.append(char)
            pos += 1
            continue
        escape = text[pos + 1 : pos + 2]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            pos += 2
        elif escape in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[escape]
            digits = text[pos + 2 : pos + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise SelectorError(f"\\{escape} needs {width} hex digits", pos)
            code = int(digits, 16)
            if escape != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
                raise SelectorError(f"\\{escape}{digits} is not a valid Unicode code point", pos)
            out.append(chr(code))
            pos += 2 + width
        elif escape and escape in "01234567":
            digits = text[pos + 1 : pos + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise SelectorError("an octal escape is exactly three digits, \\000 to \\377", pos)
            out.append(chr(int(digits, 8)))
            pos += 4
        else:
            shown = f"\\{escape}" if escape else "a lone backslash"
            hint = " (in a regex write \\\\ for a backslash, e.g. \"\\\\d+\", or use a `raw string`)" if escape else ""
            raise SelectorError(f"unknown escape {shown}{hint}", pos)


def _re2(value: str):
    """`value` compiled by RE2 as Loki compiles it: `.` matches newlines; matched with fullmatch."""
    options = re2.Options()
    options.dot_nl = True
    options.log_errors = False  # the error is raised, not printed into pyinfra's output
    return re2.compile(value, options)


def _check_regex(value: str, pos: int) -> None:
    try:
        _re2(value)
    except re2.error as err:
        message = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else str(err)
        raise SelectorError(f"regex {value!r} does not compile as RE2 (Loki's regex engine): {message}", pos) from None


def may_overlap(a: Selector, b: Selector) -> bool:
    """Whether some stream could match both selectors, decided conservatively.

    They cannot overlap only when one of them fixes a label with `=` to a value that
    a matcher of the other (or its own) on the same label refuses: `stream="audit"`
    against `stream="security"`, `stream!="audit"` or `stream=~"app|security"`.
    Anything else may overlap (two regexes are never proven disjoint).
    """
    matchers = a.matchers + b.matchers
    for fixed in (m for m in matchers if m.op == "="):
        if any(other.name == fixed.name and not other.matches(fixed.value) for other in matchers):
            return False
    return True


def covers(general: Selector, specific: Selector) -> bool:
    """Whether every stream `specific` matches certainly matches `general` too.

    True only when each matcher of `general` is one of `specific`'s, or accepts the
    value `specific` fixes for that label with `=`. `{stream="audit"}` covers
    `{stream="audit", category="payment"}`; nothing is proven for regex against regex.
    """
    for g in general.matchers:
        fixed = [m.value for m in specific.matchers if m.name == g.name and m.op == "="]
        if g in specific.matchers or any(g.matches(v) for v in fixed):
            continue
        return False
    return True

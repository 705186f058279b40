"""docs/settings.md, generated from the settings models: every key, its type, default and meaning.

    python -m roles.docs          # rewrite docs/settings.md
    python -m roles.docs --check  # exit 1 when docs/settings.md is stale

tests/unit/test_settings_docs.py fails when the file is stale.
"""

from __future__ import annotations

import json
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from roles import _model
from roles._settings import Settings

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "settings.md"

# The constrained types of roles/_model.py, by their validator, as the reference names them.
_VALIDATOR_NAMES = {
    _model._duration: "duration",
    _model._size: "size",
    _model._abs_path: "absolute path",
    _model._name: "name",
    _model._secret_name: "secret name",
    _model._label_value: "label value",
    _model._hostport: "host:port",
    _model._no_control: "text",
    _model._hostname: "host name",
    _model._relative_name: "relative name",
}


def _type_name(annotation, metadata: list | tuple = ()) -> str:
    funcs = [f for f in (getattr(item, "func", None) for item in metadata) if f is not None]
    for func in funcs:
        if func in _VALIDATOR_NAMES:
            return _VALIDATOR_NAMES[func]
        if func.__qualname__.startswith("_url"):
            return "URL"
        if func.__name__ == "<lambda>" and func.__qualname__ == "<lambda>" and "_duration" in func.__code__.co_names:
            return "duration or 0s"
    for func in funcs:  # a type made by `matching()` or a role's own validator, by its name
        if func.__name__ not in ("check", "<lambda>"):
            return func.__name__.strip("_").replace("_", " ").removeprefix("valid ")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0], args[1:])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or unset" if type(None) in args else "")
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    strict = any(type(m).__name__ == "Strict" for m in metadata)
    name = getattr(annotation, "__name__", str(annotation))
    bounds = [f"{'≥' if hasattr(m, 'ge') else '≤'} {getattr(m, 'ge', getattr(m, 'le', None))}" for m in metadata if hasattr(m, "ge") or hasattr(m, "le")]
    return name + (f" ({', '.join(bounds)})" if bounds else "") + (" (strict)" if strict and name in ("int", "bool") else "")


def _field_type(field: FieldInfo) -> str:
    return _type_name(field.annotation, field.metadata)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, tuple) and value and isinstance(value[0], BaseModel):
        return f"{len(value)} entries, see group_data/all.py"
    return f"`{json.dumps(value, default=str)}`"


def _model_of(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _section(model: type[BaseModel], key: str, out: list[str]) -> None:
    doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
    out += [f"## `{key}`" if key else "## Host settings", "", doc, "", "| Key | Type | Default | Meaning |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | {_field_type(field)} | {_default(field)} | {meaning} |")
        sub = _model_of(field)
        if sub is not None:
            nested.append((sub, f"{key}.{name}" if key else name))
    out.append("")
    for sub, sub_key in nested:
        _section(sub, sub_key, out)


def render() -> str:
    out = [
        "# Settings reference",
        "",
        "Generated from the pydantic models by `python -m roles.docs`; do not edit by hand",
        "(tests/unit/test_settings_docs.py fails when this file is stale). Keys are set in",
        "`group_data/<group>.py` or as host data in `inventory/<env>.py`; an unknown key or a bad",
        "value is refused before any host is contacted. `*_secret` keys name a secret (an",
        "environment variable or `$SENTINEL_SECRETS_DIR/<NAME>`), never its value.",
        "",
    ]
    _section(Settings, "", out)
    return "\n".join(out).rstrip() + "\n"


ARCHITECTURE_FILE = DOCS_FILE.parent / "architecture.md"
TOPOLOGY_BEGIN = "<!-- topology table: generated by python -m roles.docs from roles/_placement.py and roles/_topology.py -->"
TOPOLOGY_END = "<!-- end of the generated topology table -->"


def render_topology_table() -> str:
    """The listeners and who may connect to each, from the placement table and FLOWS (default ports)."""
    from roles._topology import flow_table

    out = [
        TOPOLOGY_BEGIN,
        "",
        "| listener | protocol | default port | binds | who may connect (flows) | purpose |",
        "|---|---|---|---|---|---|",
    ]
    for name, protocols, port, where, clients, purpose in flow_table():
        out.append(f"| `{name}` | {protocols} | {port} | {where} | {clients} | {purpose} |")
    out += ["", TOPOLOGY_END]
    return "\n".join(out)


PLACEMENT_BEGIN = "<!-- placement table: generated by python -m roles.docs from roles/_placement.py -->"
PLACEMENT_END = "<!-- end of the generated placement table -->"


def render_placement_table() -> str:
    """Which component runs where, on what condition, with which secrets and release."""
    from roles._placement import COMPONENTS, SecretUse
    from roles._topology import _default_settings

    defaults = _default_settings()
    out = [PLACEMENT_BEGIN, "", "| component | groups | when | secrets (settings keys, defaults) | release |", "|---|---|---|---|---|"]
    for c in COMPONENTS:
        try:
            uses: tuple[SecretUse, ...] = c.secrets(defaults)
        except AttributeError:
            uses = ()
        secrets = ", ".join(f"`{u.key}`" for u in uses)
        out.append(f"| `{c.name}` | {', '.join(c.groups)} | {c.condition or 'always'} | {secrets} | {f'`{c.artifact}`' if c.artifact else ''} |")
    out += ["", PLACEMENT_END]
    return "\n".join(out)


def _replace(current: str, begin: str, end: str, table: str) -> str:
    head, _, rest = current.partition(begin)
    _, _, tail = rest.partition(end)
    if not rest:
        raise SystemExit(f"{ARCHITECTURE_FILE} has no {begin!r} marker")
    return head + table + tail


def render_architecture(current: str) -> str:
    """docs/architecture.md with its generated tables replaced."""
    current = _replace(current, PLACEMENT_BEGIN, PLACEMENT_END, render_placement_table())
    return _replace(current, TOPOLOGY_BEGIN, TOPOLOGY_END, render_topology_table())


def main(argv: list[str]) -> int:
    outputs = {DOCS_FILE: render(), ARCHITECTURE_FILE: render_architecture(ARCHITECTURE_FILE.read_text())}
    if "--check" in argv:
        stale = [path for path, text in outputs.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is stale: run python -m roles.docs", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

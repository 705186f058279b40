"""Render configs on the controller: YAML dumped from structures, text templates failing on any undefined variable."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from roles._service.quoting import refuse_control

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, **context) -> str:
    """Render `templates/<template>` with `context`."""
    return _env.get_template(template).render(**context)


MANAGED = "Managed by the Sentinel observability toolkit; local edits are overwritten."


def dump_yaml(data: dict, header: str = MANAGED) -> str:
    """`data` as YAML, after `header` as comment lines.

    Values are dumped, never pasted into a template: a string stays a string
    whatever it holds (a host named `no`, a label with `: ` or a newline), and
    no value can add a key. Keys keep their order.
    """
    refuse_control(header.replace("\n", " "), "YAML header")
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)

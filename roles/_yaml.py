"""The one YAML loader for every YAML input (versions.yml, the alert catalog, ...).

PyYAML's safe loader lets a repeated key silently win: a second `severity: info`
would turn a critical alert into a daily email. This loader refuses it, and turns
syntax errors into the project's error style instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from roles._model import SettingsError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise SettingsError(
                    f"{Path(self.name).name}:{line}: {key}",
                    f"duplicate key {key!r} (first on line {seen[key]}); YAML would silently keep the last one",
                    "keep one of the two",
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path | str, text: str | None = None) -> Any:
    """The document in `path` (or `text`, named after `path`); refuses duplicate keys and bad syntax."""
    path = Path(path)
    source = path.read_text(encoding="utf-8") if text is None else text
    loader = _UniqueKeyLoader(source)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise SettingsError(path.name, f"is not valid YAML: {err}".replace("\n", " "), "fix the YAML syntax") from None
    finally:
        loader.dispose()

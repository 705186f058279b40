"""The roles' import graph has no cycle: settings flow one way, roles import no aggregate."""

from __future__ import annotations

import ast
from pathlib import Path

ROLES = Path(__file__).resolve().parents[2] / "roles"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROLES.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """roles.* modules imported by `path`, lazy ones included, TYPE_CHECKING-only ones not."""
    tree = ast.parse(path.read_text())
    found = set()
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("roles"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("roles")}
    return found


def test_no_import_cycles():
    modules = {_module_name(p): p for p in ROLES.rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}
    # Importing roles.x.y runs roles/x/__init__.py first: an edge to the package too
    # (except to the module's own packages, which are already running).
    for name in list(graph):
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] |= ({".".join(m.split(".")[:i]) for m in set(graph[name]) for i in range(2, m.count(".") + 1)} & set(modules)) - own
        graph[name].discard(name)

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = [c for c in map(cycle_from, sorted(graph)) if c]
    assert not cycles, " -> ".join(cycles[0])


def test_roles_take_settings_as_arguments():
    """No role module imports the aggregate settings or walks the inventory at run time."""
    for path in ROLES.glob("*/__init__.py"):
        if path.parent.name.startswith("_"):
            continue
        text = path.read_text()
        assert "settings_for" not in text and "from pyinfra import inventory" not in text, path
        assert "roles._settings" not in _imports(path) and "roles._environment" not in _imports(path), path

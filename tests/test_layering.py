"""Dependencies point down: the library (everything in `vit_tf` but the CLI) imports neither the CLI
(`vit_tf.cli`, `vit_tf.commands`) nor the porting package `conversion`; `conversion` imports only `vit_tf`'s library;
no module imports one that imports it back (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = ("vit_tf.cli", "vit_tf.__main__", "vit_tf.commands")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set:
    """Project modules imported anywhere in `path` (module level or inside functions), resolved to full names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if m and m.split(".")[0] in ("vit_tf", "conversion")}


def project_modules() -> dict:
    files = sorted((ROOT / "vit_tf").rglob("*.py")) + sorted((ROOT / "conversion").rglob("*.py"))
    return {module_name(f): f for f in files}


MODULES = project_modules()


def edges() -> dict:
    graph = {}
    for name, path in MODULES.items():
        graph[name] = {m for m in imports_of(path) if m in MODULES and m != name}
    return graph


def is_cli(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in CLI)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("vit_tf") and not is_cli(n)))
def test_library_imports_neither_cli_nor_conversion(name):
    bad = sorted(m for m in imports_of(MODULES[name]) if is_cli(m) or m.split(".")[0] == "conversion")
    assert not bad, f"library module {name} imports {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("conversion")))
def test_conversion_imports_only_the_library(name):
    bad = sorted(m for m in imports_of(MODULES[name]) if is_cli(m))
    assert not bad, f"{name} imports the CLI: {bad}"


def test_no_import_cycles():
    graph = edges()
    # Packages import their own submodules from __init__ by design; a cycle is a module reaching itself through
    # modules other than its own package __init__.
    def deps(name):
        return {m for m in graph[name] if not (name.startswith(m + ".") and MODULES[m].name == "__init__.py")}

    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "active"
        for nxt in sorted(deps(node)):
            if state.get(nxt) == "active":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_checker_sees_a_library_to_cli_import(tmp_path):
    # The checker itself must be able to fail: a relative import of the commands package is resolved and caught.
    fake = ROOT / "vit_tf" / "_layering_probe.py"
    assert not fake.exists()
    fake.write_text("def f():\n    from .commands.common import load_model\n", encoding="utf-8")
    try:
        assert "vit_tf.commands.common" in imports_of(fake)
    finally:
        fake.unlink()

"""The package's shape: dependencies point down the data flow, no cycles, small modules, no
private names across modules (DESIGN.md). Read from the source with ``ast``, function-level
imports included, so a cycle cannot hide inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "farms_viz"

#: Each part of the package and the rank it has in the data flow; a module may import only from
#: its own part or from parts of a lower rank.
RANKS = {"errors": 0, "settings": 0, "core": 1, "io": 2, "zoo": 3, "pipeline": 4, "analyses": 5,
         "figures": 6, "app": 7, "cli": 8, "__init__": 9, "__main__": 9}
#: A module longer than this is usually two modules.
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(["farms_viz", *parts])] = p
    return out


MODULES = modules()


def imports(name: str, path: Path) -> list[tuple[str, list[str]]]:
    """(imported farms_viz module, names taken from it) for every import in the file."""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("farms_viz")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("farms_viz"):
                continue
            names = [a.name for a in node.names]
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in MODULES]
            out += [(s, []) for s in subs]
            out.append((mod, [n for n in names if f"{mod}.{n}" not in MODULES]))
    return out


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_belongs_to_a_part_of_the_data_flow():
    assert {part(m) for m in MODULES} <= set(RANKS), {part(m) for m in MODULES} - set(RANKS)


def test_dependencies_point_down_the_data_flow():
    up = []
    for m, p in MODULES.items():
        for dep, _ in imports(m, p):
            if dep not in MODULES:
                continue
            if RANKS[part(dep)] > RANKS[part(m)]:
                up.append(f"{m} imports {dep}")
    assert not up, up


def test_no_import_cycle():
    graph = {m: {d for d, _ in imports(m, p) if d in MODULES and d != m}
             for m, p in MODULES.items()}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, cycles[:3]


def test_no_private_name_is_imported_from_another_module():
    bad = [f"{m}: {dep}.{n}" for m, p in MODULES.items() for dep, names in imports(m, p) for n in names
           if n.startswith("_") and dep != m]
    assert not bad, bad


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_small(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= MAX_LINES, f"{module} has {n} lines"


def test_public_api_is_listed_and_documented():
    import farms_viz

    assert {"analyze", "Report", "Settings", "FarmsError", "open_source", "compare", "alphapruning",
            "tempbalance", "param_groups", "Allocation"} <= set(farms_viz.__all__)
    for name in farms_viz.__all__:
        assert getattr(farms_viz, name).__doc__, name

"""The stage layout: one module per notebook, building blocks that never import a stage, no
import cycles, and every module importable first in a fresh interpreter."""

from __future__ import annotations

import ast
import random
import subprocess
import sys

import pytest

from lib import stages
from lib.paths import NOTEBOOKS_DIR, PROJ_ROOT

LIB = PROJ_ROOT / "lib"
TOP = {"lib.__main__", "lib.sweep", "lib.reproduce"}  # the drivers above the stages


def modules() -> dict[str, list[str]]:
    """Every lib module -> the lib modules it imports anywhere (at the top or inside a function)."""
    files = {}
    for path in sorted(LIB.rglob("*.py")):
        name = ".".join(path.relative_to(PROJ_ROOT).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in files.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = sorted(m for m in imported if m in files and m != name and not name.startswith(m + "."))
    return graph


def is_stage(name: str) -> bool:
    return name == "lib.stages" or name.startswith("lib.stages.")


def test_each_notebook_has_exactly_one_stage_module():
    notebooks = {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert notebooks == set(stages.STAGES)
    for stage, module in stages.STAGES.items():
        assert module.__name__ == "lib.stages." + stage.split("_", 1)[1]
        assert module.STAGE == stage and isinstance(module.FIGURES, dict)
    assert not set(stages.PLANNED) & set(stages.STAGES)


def test_building_blocks_never_import_a_stage_or_a_driver():
    offenders = {name: [m for m in imported if is_stage(m) or m in TOP]
                 for name, imported in modules().items() if not is_stage(name) and name not in TOP}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_stages_do_not_import_each_other():
    """Only the registry (lib.stages) and 90_figures, which gathers every stage's plots, import stages."""
    gatherers = {"lib.stages", "lib.stages.figures"}
    offenders = {name: [m for m in imported if is_stage(m)]
                 for name, imported in modules().items() if is_stage(name) and name not in gatherers}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles():
    graph = modules()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += graph.get(node, [])
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert cycles == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_module_imports_in_any_order_in_a_fresh_interpreter(seed):
    names = [n for n in modules() if n != "lib.__main__"]
    random.Random(seed).shuffle(names)
    script = "; ".join(f"import {n}" for n in names)
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJ_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

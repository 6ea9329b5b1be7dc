"""The package's shape: no import cycle among safeload's modules, and ``mypy --strict safeload`` passes.

The import graph is read from the source with ``ast``, so it counts every import the code can run, including the
ones inside functions (a cycle hidden in a function still means two modules that cannot be understood, tested or
imported one without the other). Imports under ``if TYPE_CHECKING:`` are left out: they never run. An import names
the most specific module it reaches: ``from . import x`` is an edge to the submodule ``x`` when there is one, not to
the package's ``__init__``; ``from .x import name`` is an edge to ``x`` (or to ``x.name`` when that is a module).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "safeload"

Edges = dict[str, dict[str, int]]  # module -> {imported module: first line}


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name, for its ``__init__.py``)."""
    base = package_dir.parent
    names: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph(package_dir: Path) -> Edges:
    modules = module_names(package_dir)
    top = package_dir.name
    graph: Edges = {name: {} for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]  # the package relative imports start from
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target != top and not target.startswith(top + "."):
                    continue
                while target not in modules and "." in target:  # import a.b.c where c is a name, not a module
                    target = target.rpartition(".")[0]
                if target in modules:
                    graph[name][target] = min(graph[name].get(target, node.lineno), node.lineno)
    return graph


def strongly_connected(graph: Edges) -> list[list[str]]:
    """Tarjan's components with more than one module, or one module importing itself (iterative: no recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    components.append(sorted(component))
    return components


def shortest_cycle(graph: Edges, component: list[str]) -> list[str]:
    """One shortest cycle inside a component, as a closed list of modules (breadth-first from each member)."""
    members = set(component)
    best: list[str] | None = None
    for start in component:
        parents: dict[str, str | None] = {start: None}
        queue = deque([start])
        found = None
        while queue and found is None:
            node = queue.popleft()
            for child in sorted(graph[node]):
                if child == start:
                    found = node
                    break
                if child in members and child not in parents:
                    parents[child] = node
                    queue.append(child)
        if found is None:
            continue
        path = [found]
        while parents[path[-1]] is not None:
            path.append(parents[path[-1]])  # type: ignore[arg-type]
        cycle = list(reversed(path)) + [start]
        if best is None or len(cycle) < len(best):
            best = cycle
    assert best is not None
    return best


def describe_cycles(graph: Edges) -> str:
    lines = []
    for component in strongly_connected(graph):
        cycle = shortest_cycle(graph, component)
        steps = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}"
        lines.append(f"{len(component)} modules import each other: {', '.join(component)}\n  e.g. {steps}")
    return "\n".join(lines)


# ---- the checker itself, on packages written here ---------------------------------------------------------------

def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import thing\n",
        "pkg/b.py": "def thing():\n    from . import a\n    return a\n",
        "pkg/c.py": "from .a import thing\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.a": 2}
    assert strongly_connected(graph) == [["pkg.a", "pkg.b"]]
    assert "pkg.a (line 1) -> pkg.b (line 2) -> pkg.a" in describe_cycles(graph)


def test_checker_resolves_submodules_and_skips_type_checking(tmp_path):
    pkg = _write_package(tmp_path, {
        "pkg/__init__.py": "from .sub import leaf\nfrom .sub.leaf import X\n",
        "pkg/sub/__init__.py": "X = 1\n",
        "pkg/sub/leaf.py": "from typing import TYPE_CHECKING\nimport pkg.sub\nif TYPE_CHECKING:\n    from .. import top\n"
                           "X = 2\n",
        "pkg/top.py": "import os\nfrom pkg import sub\nfrom .sub import X\nfrom .sub.leaf import X as Y\n",
    })
    graph = import_graph(pkg)
    assert graph["pkg"] == {"pkg.sub.leaf": 1}  # from .sub import leaf: the submodule, not sub/__init__
    assert graph["pkg.sub.leaf"] == {"pkg.sub": 2}  # the TYPE_CHECKING import never runs
    assert graph["pkg.top"] == {"pkg.sub": 2, "pkg.sub.leaf": 4}  # os is outside the package
    assert strongly_connected(graph) == []


# ---- the package ----------------------------------------------------------------------------------------------

def test_no_import_cycle():
    graph = import_graph(PACKAGE)
    assert len(graph) > 40 and "safeload._vm" in graph and graph["safeload._vm"], "the package was not read"
    cycles = describe_cycles(graph)
    assert not cycles, "import cycles among safeload's modules (imports inside functions count):\n" + cycles


def test_mypy_strict(pytestconfig):
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install -e '.[test]' installs it)")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("the torch modules are checked against torch's own types: run where torch is installed (CI does)")
    cache = pytestconfig.cache.mkdir("mypy") if pytestconfig.cache is not None else None
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-color-output", "--no-error-summary", "safeload"]
    if cache is not None:
        cmd[3:3] = ["--cache-dir", str(cache)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, "mypy --strict safeload:\n" + result.stdout + result.stderr

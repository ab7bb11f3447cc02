"""normlab's import graph: no circle, no import inside a function, and the run's wiring in
floors (normlab/run/: each module imports only the ones listed before it)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
RUN_FLOORS = ["machine", "sizes", "identity", "record", "lock", "resume", "checkpoints", "build",
              "job", "trainer", "finish", "fit"]  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in (SRC / "normlab").rglob("*.py")}


def resolve(name: str) -> str | None:
    """The normlab module an import names (a name imported from a package: the package)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path) -> tuple[set[str], list[str]]:
    """The normlab modules `path` imports, and those it imports inside a function."""
    tree = ast.parse(path.read_text())
    found, nested = set(), []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    inner = {id(n) for f in functions for n in ast.walk(f)}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("normlab"):
            names = [resolve(f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            names = [resolve(a.name) for a in node.names if a.name.startswith("normlab")]
        for name in filter(None, names):
            found.add(name)
            if id(node) in inner:
                nested.append(name)
    return found - {module_name(path)}, nested


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_no_module_imports_inside_a_function():
    nested = {name: inner for name, (_, inner) in GRAPH.items() if inner}
    assert nested == {}


def test_no_import_circle():
    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in GRAPH[todo.pop()][0]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    circles = sorted(name for name in GRAPH if name in reaches(name))
    assert circles == []


def test_the_run_package_is_floors_that_import_only_downwards():
    run = {n.removeprefix("normlab.run.") for n in MODULES if n.startswith("normlab.run.")}
    assert run == set(RUN_FLOORS)
    for i, floor in enumerate(RUN_FLOORS):
        above = {f"normlab.run.{f}" for f in RUN_FLOORS[i:]}
        upward = GRAPH[f"normlab.run.{floor}"][0] & above
        assert not upward, (floor, upward)
        assert not any(t.startswith("normlab.pack") for t in GRAPH[f"normlab.run.{floor}"][0])


def test_the_graph_sees_an_import():
    """The checks read real imports: the fit imports the trainer, and the pack the fit."""
    assert "normlab.run.trainer" in GRAPH["normlab.run.fit"][0]
    assert "normlab.run.fit" in GRAPH["normlab.pack.run"][0]

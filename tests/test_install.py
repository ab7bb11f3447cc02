"""The install is the project's own: every module of src/ imports in the environment that
`pip install -e ".[dev]"` made, every third-party import is a declared dependency, and
normlab-train imports only what training needs."""

import ast
import importlib
import importlib.metadata as metadata
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import normlab

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Imported only where their extra is installed (model=timm, hydra/launcher=slurm): optional.
OPTIONAL = {"timm", "submitit", "hydra_plugins.hydra_submitit_launcher"}


def modules() -> list[str]:
    found = ["normlab"]
    found += [m.name for m in pkgutil.walk_packages(normlab.__path__, "normlab.")]
    for plugin in (SRC / "hydra_plugins").iterdir():
        if plugin.is_dir() and (plugin / "__init__.py").exists():
            name = f"hydra_plugins.{plugin.name}"
            found += [name, *(f"{name}.{p.stem}" for p in plugin.glob("[!_]*.py"))]
    return found


@pytest.mark.parametrize("name", modules())
def test_every_module_of_src_imports(name):
    importlib.import_module(name)


def declared() -> set[str]:
    """Distribution names normlab's installed metadata requires, extras included, normalized."""
    specs = metadata.requires("normlab") or []
    return {normalize(re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]) for spec in specs}


def normalize(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def third_party_imports() -> dict[str, str]:
    """Top-level names imported anywhere in src/ that are neither stdlib nor src's own, with a
    file that imports each."""
    own = {p.name for p in SRC.iterdir() if p.is_dir()}
    found = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency():
    """A package installed on the machine by hand cannot hide a missing declaration (scipy was
    imported by the report and declared nowhere)."""
    distributions = metadata.packages_distributions()
    wanted = declared()
    undeclared = []
    for top, where in sorted(third_party_imports().items()):
        if top in OPTIONAL:
            continue
        if not {normalize(d) for d in distributions.get(top, [top])} & wanted:
            undeclared.append(f"{top} ({where})")
    assert undeclared == []


def test_normlab_train_imports_only_what_training_needs():
    """normlab-train (normlab.cli) and train.py load no module of the report (whose scipy and
    matplotlib training does not need)."""
    code = ("import sys; sys.path.insert(0, '.'); import normlab.cli, train; "
            "print(sorted(m for m in sys.modules if m.startswith('normlab.report')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    assert out.strip() == "[]"

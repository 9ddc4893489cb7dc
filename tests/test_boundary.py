"""The boundary DESIGN.md draws: the services never import the CLI, and the shared layer imports neither.

Read from the source (every `import`, `from ... import` and `importlib.import_module("...")` of every
module, those inside functions too), so an import on a rarely taken path is caught as well as one at
the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import raishared
import services

PACKAGES = {"services": Path(services.__file__).parent, "raishared": Path(raishared.__file__).parent}
FORBIDDEN = {"services": ("raictl",), "raishared": ("raictl", "services")}


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name `from .x import y` refers to inside `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name `path` (the module `module`) imports, wherever in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(_resolve(node, module, path.name == "__init__.py"))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(str(node.args[0].value))
    return found


def _imports_of(package: str) -> dict[str, set[str]]:
    root = PACKAGES[package]
    return {_module_name(p, root, package): imported_names(p, _module_name(p, root, package))
            for p in sorted(root.rglob("*.py"))}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_a_package_never_imports_what_is_on_the_other_side(package):
    imports = _imports_of(package)
    crossing = {module: sorted(n for n in names if n.split(".")[0] in FORBIDDEN[package])
                for module, names in imports.items()}
    assert not {m: n for m, n in crossing.items() if n}, f"{package} imports {FORBIDDEN[package]}"


def test_the_reader_sees_the_imports_that_are_there():
    """The walk is not vacuous: it finds the shared settings where the services import them."""
    imports = _imports_of("services")
    assert "raishared.settings" in imports["services.serving"]
    assert "raishared.errors" in _imports_of("raishared")["raishared.database"]


def test_relative_nested_and_dynamic_imports_are_resolved(tmp_path):
    module = tmp_path / "engines.py"
    module.write_text("from . import state\nfrom ..raictl import cli\n"
                      "def f():\n    import importlib\n    importlib.import_module('raictl.settings')\n")
    names = imported_names(module, "services.llm_api.engines")
    assert {"services.llm_api", "services.raictl", "raictl.settings", "importlib"} <= names

"""Module contracts hold: every ``__all__`` names real things, every name one module
imports from another is in that module's ``__all__``, and the package's lazy table
points at real names (the kind of drift test IPython keeps for its magics table)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import deepinfra_magic

PACKAGE = Path(deepinfra_magic.__file__).parent
PACKAGES = {
    info.name.removeprefix("deepinfra_magic.")
    for info in pkgutil.walk_packages(deepinfra_magic.__path__, "deepinfra_magic.")
    if info.ispkg
}
MODULES = sorted(
    info.name.removeprefix("deepinfra_magic.")
    for info in pkgutil.walk_packages(deepinfra_magic.__path__, "deepinfra_magic.")
)


def _source(module: str) -> Path:
    """The file of a module named below the package (``maps.rows``, or ``maps`` itself)."""
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if module in PACKAGES else path.with_suffix(".py")


def internal_imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, name) for every relative ``from .x import name``
    (also ``from ..x`` inside a subpackage), names resolved from the package root."""
    found = []
    for module in MODULES:
        here = module.split(".") if module in PACKAGES else module.split(".")[:-1]
        tree = ast.parse(_source(module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                base = here[: len(here) - (node.level - 1)]
                source = ".".join([*base, node.module])
                found += [(module, source, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("module", MODULES)
def test_every_name_in_all_exists(module: str) -> None:
    loaded = importlib.import_module(f"deepinfra_magic.{module}")
    missing = [name for name in getattr(loaded, "__all__", []) if not hasattr(loaded, name)]
    assert missing == []


def test_every_name_imported_across_modules_is_exported() -> None:
    unlisted = []
    for importer, source, name in internal_imports():
        exported = getattr(importlib.import_module(f"deepinfra_magic.{source}"), "__all__", None)
        if name.startswith("_") or name == "__version__":
            continue
        if exported is None or name not in exported:
            unlisted.append(f"{importer} imports {source}.{name}")
    assert unlisted == []


def test_the_lazy_table_and_all_name_real_things() -> None:
    for name, module in deepinfra_magic._LAZY.items():
        assert hasattr(importlib.import_module(f"deepinfra_magic.{module}"), name), name
        assert name in deepinfra_magic.__all__
    for name in deepinfra_magic.__all__:
        assert getattr(deepinfra_magic, name) is not None, name

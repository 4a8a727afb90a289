"""Module contracts hold: every ``__all__`` names real things, every name one module
imports from another is in that module's ``__all__``, and the package's lazy table
points at real names (the kind of drift test IPython keeps for its magics table).
Subpackages (``magics/`` and the others) are walked too."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import deepinfra_magic

PACKAGE = Path(deepinfra_magic.__file__).parent
MODULES = sorted(
    info.name.removeprefix("deepinfra_magic.")
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="deepinfra_magic.")
)


def source_of(module: str) -> Path:
    """The file of a module named relative to the package (``magics.chat``, ``magics``)."""
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def resolve(importer: str, level: int, target: str | None) -> str:
    """The module a relative import names, relative to the package (``..errors`` from
    ``magics.chat`` is ``errors``)."""
    parts = importer.split(".")
    is_package = source_of(importer).name == "__init__.py"
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, *([target] if target else [])])


def internal_imports() -> list[tuple[str, str, str]]:
    """(importing module, imported module, name) for every relative ``from … import name``."""
    found = []
    for module in MODULES:
        tree = ast.parse(source_of(module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                source = resolve(module, node.level, node.module)
                found += [(module, source, alias.name) for alias in node.names]
    return found


def test_subpackages_are_walked() -> None:
    assert "magics" in MODULES and "magics.chat" in MODULES


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

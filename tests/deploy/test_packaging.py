"""Each package declares what its code imports: `pip install` of one package (the cli
with its sandbox, a service alone in its image) must bring everything it needs, not
only what happens to be in the development venv.

Read from the code (ast), not by importing it: every top-level import outside the
standard library and the package itself, every module run with ``python -m`` and every
``importlib.import_module("...")`` must be a distribution the package's pyproject.toml
lists. Our own packages map by their folders; third-party ones by what is installed
(importlib.metadata.packages_distributions())."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from tests.deploy.codebase import ROOT, package_dirs


def canonical(distribution: str) -> str:
    """A distribution's name as pip compares it (PEP 503): case and -_. do not matter."""
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared(folder: Path) -> set[str]:
    """The distributions ``[project] dependencies`` names (without extras, versions, markers)."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project.get("dependencies", []):
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        assert match, f"{folder.name}: cannot read the requirement {requirement!r}"
        names.add(canonical(match.group(1)))
    return names


def import_packages(folder: Path) -> list[Path]:
    """The import packages a distribution ships: its folders holding an __init__.py."""
    return sorted(path for path in folder.iterdir() if (path / "__init__.py").is_file())


@cache
def distributions_of() -> dict[str, set[str]]:
    """Top-level import name -> the distributions providing it: ours from the repository,
    the rest from what is installed."""
    found = {name: {canonical(d) for d in dists} for name, dists in importlib.metadata.packages_distributions().items()}
    for folder in package_dirs():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        for package in import_packages(folder):
            found[package.name] = {canonical(project["name"])}
    return found


def modules_used(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(module, line) for each absolute import, ``-m module`` in a command line, and
    ``import_module("module")`` in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
        elif isinstance(node, ast.List | ast.Tuple):
            words = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, module in zip(words, words[1:]):
                if flag == "-m" and isinstance(module, str):
                    yield module, node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def undeclared(folder: Path) -> list[str]:
    """What the package's code imports that its pyproject.toml does not declare."""
    own = {package.name for package in import_packages(folder)}
    dependencies = declared(folder)
    problems = []
    for package in import_packages(folder):
        for source in sorted(package.rglob("*.py")):
            seen: set[str] = set()
            for module, line in sorted(modules_used(ast.parse(source.read_text(), filename=str(source))), key=lambda u: u[1]):
                top = module.split(".")[0]
                if top in own or top in seen or top in sys.stdlib_module_names or top == "__future__":
                    continue
                seen.add(top)
                where = f"{source.relative_to(ROOT)}:{line}"
                providers = distributions_of().get(top)
                if not providers:
                    problems.append(f"{where}: {top} is not installed, so which distribution it is is unknown")
                elif not providers & dependencies:
                    problems.append(f"{where}: imports {top} ({' or '.join(sorted(providers))}), not declared")
    return problems


@pytest.mark.parametrize("folder", package_dirs(), ids=lambda folder: folder.name)
def test_each_package_declares_every_distribution_its_code_imports(folder: Path) -> None:
    problems = undeclared(folder)
    assert not problems, f"{folder.relative_to(ROOT)}/pyproject.toml misses:\n" + "\n".join(problems)


def test_the_check_sees_imports_in_every_form() -> None:
    """The reader above finds plain, from, ``-m`` and import_module uses alike."""
    code = (
        "import a.b\nfrom c.d import e\nfrom . import f\n"
        "run([sys.executable, '-m', 'g.server'])\nimportlib.import_module('h')\n"
    )
    assert sorted(module for module, _ in modules_used(ast.parse(code))) == ["a.b", "c.d", "g.server", "h"]

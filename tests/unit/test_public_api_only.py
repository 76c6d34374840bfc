"""vutf uses only the public API of its dependencies (docs/architecture.md, "Layers").

Every ``.py`` under ``vutf_cli/`` is parsed (``ast``) and checked for:

* an import of a private module or name of a dependency: a dotted component
  that starts with ``_`` (``typer._click``, ``from json.decoder import
  _x``), also through ``importlib.import_module("...")``/``__import__``;
* an import of a module that is Typer's machinery rather than its API
  (``typer.core``, ``typer.main``, ``typer.models``) or of ``click`` (Typer
  vendors its own copy; vutf does not depend on Click);
* a use of CPython's ``json`` internals (``c_make_encoder``, ``scan_once``, ...),
  imported or reached as an attribute (``json.encoder.c_make_encoder``);
* monkeypatching a dependency: ``setattr(<something imported from a
  dependency>, ...)`` or an assignment to its attribute
  (``typer.core.TyperGroup.main = ...``).

A library upgrade may change any of these without notice; the public API is
what its maintainers promise to keep.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vutf_cli"
OWN = "vutf_cli"

# Modules that are Typer's machinery, not its documented API; and Click, which
# Typer vendors (vutf must not depend on a second copy).
FORBIDDEN_MODULES = ("typer.core", "typer.main", "typer.models", "click")

# CPython's json accelerators and scanner: undocumented, replaced between releases.
INTERNAL_NAMES = frozenset(
    {
        "c_make_encoder",
        "c_scanstring",
        "c_encode_basestring",
        "c_encode_basestring_ascii",
        "py_scanstring",
        "scan_once",
        "make_scanner",
        "py_make_scanner",
    }
)

# Underscore names that are documented public API despite their spelling.
DOCUMENTED_UNDERSCORE = frozenset({"os._exit", "sys._getframe"})

# Attributes a program may replace by design: the standard streams
# (``contextlib.redirect_stdout`` does exactly this; ``sys.__stdout__`` keeps
# the original for that reason).
REPLACEABLE = frozenset({"sys.stdin", "sys.stdout", "sys.stderr"})


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _private(dotted: str) -> bool:
    if dotted in DOCUMENTED_UNDERSCORE:
        return False
    return any(
        part.startswith("_") and not (part.startswith("__") and part.endswith("__"))
        for part in dotted.split(".")
    )


def _module_problem(module: str, verb: str = "imports") -> str | None:
    """Why using ``module`` (a dependency's dotted name) is not allowed, if it is not."""
    if module.split(".")[0] == OWN:
        return None
    for forbidden in FORBIDDEN_MODULES:
        if module == forbidden or module.startswith(forbidden + "."):
            return f"{verb} {module} (not public API: {forbidden})"
    if _private(module):
        return f"{verb} private {module}"
    if module.split(".")[-1] in INTERNAL_NAMES:
        return f"{verb} internal {module}"
    return None


class _Checker(ast.NodeVisitor):
    """Collects violations; ``imported`` maps a local name to the dependency path it stands for."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.imported: dict[str, str] = {}
        self.violations: list[Violation] = []

    def _add(self, node: ast.AST, what: str) -> None:
        self.violations.append(Violation(self.path, getattr(node, "lineno", 0), what))

    def _check_module(self, node: ast.AST, module: str, verb: str = "imports") -> bool:
        problem = _module_problem(module, verb)
        if problem:
            self._add(node, problem)
        return problem is not None

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_module(node, alias.name)
            if alias.name.split(".")[0] != OWN:
                local = alias.asname or alias.name.split(".")[0]
                self.imported[local] = alias.name if alias.asname else local
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or node.module is None:  # relative: vutf_cli's own
            return
        bad_module = self._check_module(node, node.module)
        if node.module.split(".")[0] == OWN:
            return
        for alias in node.names:
            if alias.name == "*":
                continue
            if not bad_module:
                self._check_module(node, f"{node.module}.{alias.name}")
            self.imported[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        self.generic_visit(node)

    def _dependency_path(self, node: ast.expr) -> str | None:
        """``json.encoder.c_make_encoder`` -> that dotted path, when rooted at an import."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.imported:
            return None
        return ".".join([self.imported[node.id], *reversed(parts)])

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = self._dependency_path(node)
        if (
            dotted is not None
            and isinstance(node.ctx, ast.Load)
            and self._check_module(node, dotted, "uses")
        ):
            return  # one report per chain, not one per prefix
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else None
        dotted = self._dependency_path(func) if isinstance(func, ast.Attribute) else None
        first = node.args[0] if node.args else None
        if (name == "__import__" or dotted == "importlib.import_module") and (
            isinstance(first, ast.Constant) and isinstance(first.value, str)
        ):
            self._check_module(node, first.value)
        if name == "setattr" and first is not None:
            target = self._dependency_path(first)
            if target is not None:
                self._add(node, f"monkeypatches {target} (setattr on a dependency)")
        self.generic_visit(node)

    def _check_store(self, target: ast.expr) -> None:
        if isinstance(target, ast.Attribute):
            owner = self._dependency_path(target.value)
            if owner is not None and f"{owner}.{target.attr}" not in REPLACEABLE:
                self._add(target, f"monkeypatches {owner}.{target.attr} (assignment)")
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_store(element)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_store(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_store(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_store(target)
        self.generic_visit(node)


def violations_in(source: str, path: str = "<source>") -> list[Violation]:
    checker = _Checker(path)
    checker.visit(ast.parse(source, filename=path))
    return checker.violations


def _package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_package() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in _package_files()}
    assert {"cli/app.py", "cli/root.py", "errors.py"} <= names


@pytest.mark.parametrize(
    "path", _package_files(), ids=lambda path: path.relative_to(PACKAGE).as_posix()
)
def test_only_public_api_of_dependencies(path: Path) -> None:
    relative = path.relative_to(PACKAGE.parent).as_posix()
    found = violations_in(path.read_text(encoding="utf-8"), relative)
    assert not found, "private or internal API of a dependency:\n  " + "\n  ".join(map(str, found))


# -- the scanner itself: what it must catch, and what it must let through ----------------
@pytest.mark.parametrize(
    "source",
    [
        "from typer import _click as click",
        "import typer._completion_shared",
        "from typer._completion_shared import get_completion_script",
        "from typer.core import TyperGroup",
        "import typer.main",
        "from typer.models import CommandInfo",
        "from typer import core",
        "import click",
        "from click.exceptions import UsageError",
        "from json.encoder import c_make_encoder",
        "from json.scanner import make_scanner",
        "import json\nencode = json.encoder.c_make_encoder",
        "from json import decoder\nscan = decoder.scan_once",
        "import importlib\nimportlib.import_module('typer._coercion')",
        "__import__('typer.core')",
        "import typer\nsetattr(typer.Typer, '__call__', None)",
        "from json import JSONEncoder\nsetattr(JSONEncoder, 'default', None)",
        "import typer\ntyper.Typer.main = None",
        "from sqlalchemy.orm import Session\nSession.execute = None",
        "import typer\nx = typer._click.Context",
        "from typer.main import get_command",
        "import typer.main\ntyper.main.get_group(None)",
        "import sys\nsys.modules = {}",
    ],
)
def test_the_scanner_catches(source: str) -> None:
    assert violations_in(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import typer\nfrom typer.testing import CliRunner",
        "import typer\napp = typer.Typer()\napp.info = None",
        "from vutf_cli.cli._private import x",
        "from . import _private",
        "import json\njson.dumps({})",
        "import os\nos._exit(0)",
        "import sys\nsys._getframe()",
        "class A:\n    pass\nsetattr(A, 'x', 1)",
        "from vutf_cli.output import Terminal\nsetattr(Terminal, 'x', 1)",
        "from dataclasses import dataclass\n@dataclass\nclass A:\n    x: int = 0\nA().x = 1",
        "import sys\nsys.stdout, sys.stderr = out, err",
    ],
)
def test_the_scanner_lets_through(source: str) -> None:
    assert not violations_in(source), violations_in(source)

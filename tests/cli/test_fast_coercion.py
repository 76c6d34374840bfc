"""Fast coercion: what it answers is what pydantic answers, and errors stay Typer's.

:mod:`vutf_cli.cli.coercion` lets option values skip pydantic when the answer
is plain (a ``str``, a ``bool``, ``--limit 50``).  For every parameter of the
live command tree, every value it answers must equal what the ``TypeAdapter``
Typer builds returns; whatever it does not answer goes to that adapter, so the
error messages for bad values are Typer's own.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._adapters import try_build_adapter
from typer.core import TyperArgument, TyperOption

from tests.cli.conftest import invoke
from vutf_cli.cli import coercion
from vutf_cli.cli.coercion import NOT_HANDLED, fast_value


def test_fast_coercion_works_with_the_installed_typer() -> None:
    """A Typer upgrade that removes the hook must be noticed, not silently slow."""
    assert coercion.FAST_COERCION_AVAILABLE
    assert coercion.install_fast_coercion()


def _live_params() -> Iterator[TyperOption | TyperArgument]:
    from vutf_cli.cli.root import command

    def walk(cmd: Any) -> Iterator[Any]:
        yield from cmd.params
        for name in getattr(cmd, "commands", {}):
            yield from walk(cmd.commands[name])

    for param in walk(command):
        if isinstance(param, TyperOption | TyperArgument):
            yield param


LIVE_PARAMS = list(_live_params())
SAMPLES: list[Any] = [
    None, True, False, 0, 1, -1, 5, 100, 10_000, 10_001, 2**60, 1.5, -0.0,
    "", "0", "5", "-3", "100", "10000", "10001", "007", "+5", " 5", "5 ", "1_000", "1e3",
    "1.5", "-0.5", "12.", ".5", "abc", "٣", "True", "yes", "x" * 300,
    ("a", "b"), ["a"], (), ("a", 1),
]  # fmt: skip


def _pydantic(param: TyperOption | TyperArgument, value: Any) -> Any:
    descriptor = param.type_descriptor
    adapter = try_build_adapter(descriptor.annotation, descriptor.parameter_info)
    assert adapter is not None
    return adapter.validate_python(value)


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.copysign(1, left) == math.copysign(1, right) and left == right
    return type(left) is type(right) and left == right


def test_live_tree_has_the_parameter_types_worth_checking() -> None:
    annotations = {repr(param.type_descriptor.annotation) for param in LIVE_PARAMS}
    assert {"<class 'str'>", "<class 'bool'>", "<class 'int'>"} <= annotations
    assert any(param.type_descriptor.parameter_info.min is not None for param in LIVE_PARAMS)


@pytest.mark.parametrize("param", LIVE_PARAMS, ids=lambda p: "/".join(p.opts or [p.name or "?"]))
def test_every_answer_for_a_live_parameter_is_pydantics(param: TyperOption | TyperArgument) -> None:
    descriptor = param.type_descriptor
    for value in SAMPLES:
        answer = fast_value(descriptor.annotation, descriptor.parameter_info, value)
        if answer is NOT_HANDLED:
            continue
        assert _same(answer, _pydantic(param, value)), (param.opts, value, answer)


INT_PARAMS = [p for p in LIVE_PARAMS if p.type_descriptor.annotation is int]
FLOAT_PARAMS = [p for p in LIVE_PARAMS if p.type_descriptor.annotation is float]


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,18})?", fullmatch=True),
        st.text(alphabet="0123456789-+._ e", max_size=12),
    )
)
def test_number_text_answers_are_pydantics(text: str) -> None:
    for param in INT_PARAMS + FLOAT_PARAMS:
        descriptor = param.type_descriptor
        answer = fast_value(descriptor.annotation, descriptor.parameter_info, text)
        if answer is not NOT_HANDLED:
            assert _same(answer, _pydantic(param, text)), (param.opts, text, answer)


def test_plain_values_are_answered_without_pydantic() -> None:
    info = LIVE_PARAMS[0].type_descriptor.parameter_info
    assert fast_value(str, info, "alice") == "alice"
    assert fast_value(bool, info, False) is False
    limit = next(p for p in INT_PARAMS if p.type_descriptor.parameter_info.max is not None)
    limit_info = limit.type_descriptor.parameter_info
    assert fast_value(int, limit_info, "50") == 50
    # Out of range, or not plain: pydantic decides (and words the error).
    assert fast_value(int, limit_info, str(limit_info.max + 1)) is NOT_HANDLED
    assert fast_value(int, limit_info, "abc") is NOT_HANDLED
    assert fast_value(int, limit_info, "007") is NOT_HANDLED


@pytest.mark.parametrize(
    ("group", "value", "message"),
    [
        ("users", "abc", "Input should be a valid integer, unable to parse string as an integer"),
        ("keys", "0", "Input should be greater than or equal to 1"),
        ("keys", "1001", "Input should be less than or equal to 1000"),
    ],
)
def test_bad_values_get_typers_own_message(group: str, value: str, message: str) -> None:
    result = invoke([group, "list", "--limit", value])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: Invalid value for '--limit': {message}" in result.stderr


def test_a_command_line_of_plain_values_does_not_import_pydantic(tmp_path: Any) -> None:
    """Parsing ``users list --limit 5 --sort username --active`` never builds an adapter."""
    code = (
        "import sys\n"
        "from vutf_cli.cli.root import command\n"
        "ctx = command.make_context('vutf', ['--json', 'users', 'list', '--limit', '5',"
        " '--sort', 'username', '--active', '--search', 'x'])\n"
        "group = command.commands['users']\n"
        "sub = group.make_context('users', ['list', '--limit', '5', '--sort', 'username',"
        " '--active', '--search', 'x'], parent=ctx)\n"
        "leaf = group.commands['list'].make_context('list', ['--limit', '5', '--sort',"
        " 'username', '--active', '--search', 'x'], parent=sub)\n"
        "assert leaf.params['limit'] == 5, leaf.params\n"
        "assert leaf.params['sort'] == 'username'\n"
        "assert leaf.params['active'] is True\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"

"""Option and argument values coerced without importing pydantic in the common cases.

Typer 0.29 coerces every parameter value through a pydantic ``TypeAdapter``,
built on first use; merely building one imports pydantic, which costs more
than the rest of a command's start-up.  Most values vutf sees need no such
machinery: an option that was not given (``None``), a ``str`` that is already
a ``str``, a flag that is already a ``bool``, a plain decimal ``--limit 50``.

:func:`install_fast_coercion` gives every Typer parameter a runtime parameter
that answers exactly those values itself and hands everything else
(``--limit abc``, ``--limit 0`` below its minimum, a path, a parser) to the
runtime parameter Typer would have built, so results and error messages stay
Typer's own.  ``tests/cli/test_fast_coercion.py`` checks, for every parameter
of the live command tree, that a value answered here equals what pydantic
returns.

It relies on details of Typer's internals: ``_TyperParameter.get_runtime_param``
filling the parameter's ``_runtime_param`` slot on first use, and the
``RuntimeParam`` contract.  If a Typer upgrade removes them, the install is a
no-op (``FAST_COERCION_AVAILABLE`` is False and a test says so): slower, never
wrong.
"""

from __future__ import annotations

from typing import Any, Final

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - a Typer without the runtime-param layer
    FAST_COERCION_AVAILABLE = False
else:
    FAST_COERCION_AVAILABLE = hasattr(_TyperParameter, "get_runtime_param")

__all__ = ["FAST_COERCION_AVAILABLE", "NOT_HANDLED", "fast_value", "install_fast_coercion"]

# What this module cannot answer: the value goes to Typer's own coercion.
NOT_HANDLED: Final = object()

# Integers a float holds exactly.
_EXACT_FLOAT_INTS: Final = 2**53


def _plain_int_text(text: str) -> bool:
    """An ASCII decimal that int() and pydantic read identically (``-12``, ``0``, ``100``).

    Leading zeros, ``+``, underscores, exponents and whitespace are left to pydantic.
    """
    digits = text[1:] if text[:1] == "-" else text
    return (
        0 < len(digits) <= 18
        and digits.isascii()
        and digits.isdigit()
        and (digits[0] != "0" or digits == "0")
    )


def _plain_float_text(text: str) -> bool:
    """``12``, ``-0.5``, ``3.25``: what float() and pydantic read identically."""
    whole, dot, fraction = text.partition(".")
    if not _plain_int_text(whole) or len(whole.lstrip("-")) > 15:
        return False
    return not dot or (0 < len(fraction) <= 15 and fraction.isascii() and fraction.isdigit())


def _number(annotation: Any, value: Any) -> int | float | None:
    kind = type(value)
    if kind is int and (annotation is int or abs(value) < _EXACT_FLOAT_INTS):
        return int(value) if annotation is int else float(value)
    if kind is float and annotation is float:
        return float(value)
    if kind is str and annotation is int and _plain_int_text(value):
        return int(value)
    if kind is str and annotation is float and _plain_float_text(value):
        return float(value)
    return None


def fast_value(annotation: Any, info: Any, value: Any) -> Any:
    """The coerced value, as pydantic would produce it, or ``NOT_HANDLED``."""
    if info.parser is not None:
        return NOT_HANDLED
    kind = type(value)
    if annotation is str:
        return value if kind is str else NOT_HANDLED
    if annotation is bool:
        return value if kind is bool else NOT_HANDLED
    if annotation is int or annotation is float:
        number = None if info.clamp else _number(annotation, value)
        if number is None:
            return NOT_HANDLED
        low, high = info.min, info.max
        if (low is not None and number < low) or (high is not None and number > high):
            return NOT_HANDLED  # out of range: pydantic words the error
        return number
    if getattr(annotation, "__origin__", None) is list and annotation.__args__ == (str,):
        if kind in (list, tuple) and all(type(item) is str for item in value):
            return list(value)
        return NOT_HANDLED
    return NOT_HANDLED


if FAST_COERCION_AVAILABLE:

    class _DeferredRuntimeParam(RuntimeParam):
        """Answers the simple values itself; builds Typer's runtime parameter for the rest.

        Not itself a dataclass: the frozen dataclass it extends holds all it
        needs, and creating a dataclass costs more than this whole module.
        """

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            result = fast_value(self.annotation, self.parameter_info, value)
            if result is not NOT_HANDLED:
                return result
            typer_param: RuntimeParam | None = self.__dict__.get("_typer_param")
            if typer_param is None:
                descriptor = TypeDescriptor(
                    annotation=self.annotation,
                    parameter_info=self.parameter_info,
                    file_annotation=None,  # file parameters never get here
                )
                typer_param = build_runtime_param(descriptor)
                # A cache on a frozen object: set around its __setattr__.
                object.__setattr__(self, "_typer_param", typer_param)
            return typer_param._coerce_value(value, param=param, ctx=ctx)

    def _runtime_param_for(descriptor: TypeDescriptor) -> RuntimeParam:
        if descriptor.file_annotation is not None or descriptor.parameter_info.parser is not None:
            return build_runtime_param(descriptor)
        return _DeferredRuntimeParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )

    def _get_runtime_param(self: Any) -> RuntimeParam:
        # Replaces _TyperParameter.get_runtime_param: the same lazy slot, other contents.
        if self._runtime_param is None:
            self._runtime_param = _runtime_param_for(self.type_descriptor)
        runtime_param: RuntimeParam = self._runtime_param
        return runtime_param


def install_fast_coercion() -> bool:
    """Make every Typer parameter coerce through the fast path (idempotent).

    Process-wide: it applies to any Typer parameter, including the help
    options Click creates per context.  Returns whether it is in effect.
    """
    if not FAST_COERCION_AVAILABLE:
        return False
    if _TyperParameter.get_runtime_param is not _get_runtime_param:
        setattr(_TyperParameter, "get_runtime_param", _get_runtime_param)  # noqa: B010
    return True

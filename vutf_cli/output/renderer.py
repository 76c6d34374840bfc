"""The interface every output format implements, and finding the one for a name.

A renderer draws results on :class:`~vutf_cli.output.stdout.Stdout` and
nothing else: messages, errors and progress on stderr belong to
:class:`~vutf_cli.output.terminal.Terminal`.  The formats and their renderers
are listed in :mod:`vutf_cli.output_formats`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from vutf_cli.output.columns import Column
from vutf_cli.output.stdout import Stdout
from vutf_cli.output_formats import RENDERERS, check_output_format

__all__ = ["Renderer", "renderer_for"]


class Renderer(ABC):
    """One output format: how one result and how a list of results look on stdout."""

    # True when programs read this format: errors on stderr are then one JSON
    # object too.
    errors_as_json: ClassVar[bool] = False

    @abstractmethod
    def write_object(self, out: Stdout, record: Mapping[str, Any], *, title: str | None) -> None:
        """Write one result, given as its fields in order; ``title`` is for people only."""

    @abstractmethod
    def write_rows(self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column]) -> int:
        """Write every row as ``columns`` say and return how many there were.

        Formats that can stream write each row as it arrives.  With no rows a
        format writes its empty form (``[]``, a header, or nothing).
        """


_LOADED: dict[str, Renderer] = {}


def renderer_for(name: str) -> Renderer:
    """The renderer of output format ``name``; an unknown name is InvalidInput (exit 2)."""
    renderer = _LOADED.get(name)
    if renderer is None:
        module_name, _, class_name = RENDERERS[check_output_format(name)].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, Renderer)):
            raise TypeError(f"{RENDERERS[name]} is not a Renderer")
        renderer = _LOADED[name] = cls()
    return renderer

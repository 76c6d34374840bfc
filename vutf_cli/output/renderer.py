"""The interface every output format implements, and finding the one for a name.

A renderer draws results on :class:`~vutf_cli.output.stdout.Stdout` and
nothing else: messages, errors and progress on stderr belong to
:class:`~vutf_cli.output.terminal.Terminal`.  The formats and their renderers
are listed in :mod:`vutf_cli.output_formats`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    # True for the formats people read (table, wide): a mutation prints a
    # summary line instead of its record, and long output may be paged.
    for_people: ClassVar[bool] = False

    @abstractmethod
    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        """Write one result, given as its fields in order; ``title`` is for people only.

        ``headers=False`` (``--no-headers``) leaves out what names the fields
        where a format has such a line (table, csv).
        """

    @abstractmethod
    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        """Write every row as ``columns`` say and return how many there were.

        Formats that can stream write each row as it arrives.  With no rows a
        format writes its empty form (``[]``, a header, or nothing).
        ``headers=False``: no header line (table, csv).
        """

    def stream_rows(
        self,
        out: Stdout,
        rows: Iterable[Any],
        columns: Sequence[Column],
        *,
        sample: Sequence[Any] = (),
        headers: bool = True,
    ) -> int:
        """:meth:`write_rows` for rows that arrive over time (``audit follow``).

        Each row is on ``out``, flushed, before the next one is awaited.
        ``sample``: rows like those to come, which a table measures its
        columns by (never written).
        """

        def flushed() -> Iterator[Any]:
            # The renderer asks for the next row once it has written this one.
            for row in rows:
                yield row
                out.flush()

        return self.write_rows(out, flushed(), columns, headers=headers)


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

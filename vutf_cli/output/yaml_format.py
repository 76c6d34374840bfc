"""``-o yaml``: one YAML mapping, or one YAML sequence of rows, for programs and reviews.

Values are those of ``-o json`` (:func:`~vutf_cli.output.serialize.to_jsonable`:
UTC timestamps with a ``Z``, UUIDs as text), written by PyYAML's safe dumper
in the order of the fields.  Every character outside printable ASCII is
written as an escape (``allow_unicode=False``): the same value once parsed,
and nothing a terminal would obey (C1 controls, bidi overrides) reaches it.
Rows are streamed, one sequence item at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from vutf_cli.output.columns import Column, records
from vutf_cli.output.renderer import Renderer
from vutf_cli.output.serialize import to_jsonable
from vutf_cli.output.stdout import Stdout

__all__ = ["YamlRenderer", "yaml_text"]


def yaml_text(value: Any) -> str:
    """``value`` (JSON-ready after :func:`to_jsonable`) as a YAML document."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(
        to_jsonable(value),
        Dumper=dumper,
        sort_keys=False,
        allow_unicode=False,
        default_flow_style=False,
        width=100,
    )
    return text


class YamlRenderer(Renderer):
    errors_as_json = True

    def write_object(
        self, out: Stdout, record: Mapping[str, Any], *, title: str | None, headers: bool = True
    ) -> None:
        out.write(yaml_text(dict(record)))

    def write_rows(
        self, out: Stdout, rows: Iterable[Any], columns: Sequence[Column], *, headers: bool = True
    ) -> int:
        count = 0
        for record in records(rows, [column.key for column in columns]):
            out.write(yaml_text([record]))
            count += 1
        if count == 0:
            out.write("[]\n")
        return count

"""The output formats (``-o``): the one list of their names and of their renderers.

Adding an output format is a renderer module under ``vutf_cli/output/`` (a
subclass of ``vutf_cli.output.renderer.Renderer``) and one line in
``RENDERERS``; the settings' validation, the ``-o`` help text, the fallback
when settings cannot be read and completion all read the names from here.

This module sits outside the ``vutf_cli.output`` package and names each
renderer by its import path on purpose: settings (imported by the core
layers) must not import the output package or rich (import-linter contracts
in pyproject.toml), and a command that prints nothing loads no renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from vutf_cli.errors import InvalidInput

__all__ = [
    "DEFAULT_OUTPUT_FORMAT",
    "OUTPUT_FORMATS",
    "RENDERERS",
    "check_output_format",
]

# Format name -> "module:class" of its renderer.  The order is the order the
# help text and error hints list them in.
RENDERERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "table": "vutf_cli.output.table_format:TableRenderer",
        "wide": "vutf_cli.output.table_format:WideTableRenderer",
        "json": "vutf_cli.output.json_format:JsonRenderer",
        "jsonl": "vutf_cli.output.jsonl_format:JsonLinesRenderer",
        "csv": "vutf_cli.output.csv_format:CsvRenderer",
        "yaml": "vutf_cli.output.yaml_format:YamlRenderer",
    }
)

OUTPUT_FORMATS: Final[tuple[str, ...]] = tuple(RENDERERS)

DEFAULT_OUTPUT_FORMAT: Final = "table"


def check_output_format(name: str) -> str:
    """``name`` if it is an output format; else the one-line error (exit 2)."""
    if name not in RENDERERS:
        raise InvalidInput(
            f"unknown output format {name!r}", hint="use one of: " + ", ".join(OUTPUT_FORMATS)
        )
    return name

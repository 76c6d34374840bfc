"""Rendering of results: the only package that imports rich (and only lazily).

``Terminal`` owns stdout/stderr and renders in one of ``OUTPUT_FORMATS``
(defined in :mod:`vutf_cli.output_formats`, one renderer module each here);
``Column`` describes one field of listed rows.  Importing this package does
not import rich: json, jsonl and csv output never need it.
"""

from __future__ import annotations

from vutf_cli.output.columns import Column
from vutf_cli.output.terminal import Terminal
from vutf_cli.output_formats import OUTPUT_FORMATS

__all__ = ["OUTPUT_FORMATS", "Column", "Terminal"]

"""Rendering of results: the only package that imports rich (and only lazily).

``Terminal`` owns stdout/stderr and renders in one of ``OUTPUT_FORMATS``;
``Column`` describes one field of listed rows.  Importing this package does
not import rich: json, jsonl and csv output never need it.
"""

from __future__ import annotations

from vutf_cli.output.terminal import OUTPUT_FORMATS, Column, Terminal

__all__ = ["OUTPUT_FORMATS", "Column", "Terminal"]

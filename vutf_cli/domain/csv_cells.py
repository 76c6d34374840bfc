"""The one rule for escaping a CSV cell against spreadsheet formulas, and undoing it.

OWASP "CSV Injection": a cell starting with ``=``, ``+``, ``-``, ``@`` (or tab
or CR, which some importers strip before looking at the next character) is
evaluated as a formula by Excel, LibreOffice and Google Sheets.  ``-o csv``
prefixes such a cell with ``'``, which spreadsheets take as "this is text" and
do not display.  A cell that already starts with ``'`` gets one too (``'abc``
is written ``''abc``), so a leading ``'`` always means "escape" and ``users
import`` can undo it exactly (docs/architecture.md §5.3).
"""

from __future__ import annotations

from typing import Final

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
ESCAPED_STARTS: Final = (*FORMULA_TRIGGERS, "'")


def escape_cell(cell: str) -> str:
    """``cell`` as written to CSV: one ``'`` in front when it starts with a trigger or ``'``.

    Only text goes through here: numbers such as ``-3`` keep their value
    because the CSV writer writes them, not this function.
    """
    if cell.startswith(ESCAPED_STARTS):
        return "'" + cell
    return cell


def unescape_cell(cell: str) -> str:
    """The value a CSV cell holds: ``cell`` without the ``'`` that :func:`escape_cell` adds.

    Any other leading ``'`` (``'abc`` in a hand-written file) is data.
    """
    if cell.startswith("'") and cell[1:].startswith(ESCAPED_STARTS):
        return cell[1:]
    return cell

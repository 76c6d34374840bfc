"""Old spellings of renamed options: still accepted, hidden from help, warned about.

An option is renamed when one word meant two things (``--format`` as the
output format of one command and the input format of another; ``-o`` is the
output format everywhere).  The old name stays a hidden option so scripts keep
working; using it prints one warning naming the new spelling, and giving both
with different values is exit 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vutf_cli.errors import InvalidInput

if TYPE_CHECKING:
    from vutf_cli.cli.context import AppContext

__all__ = ["renamed"]


def renamed(
    app_ctx: AppContext, *, new: str | None, old: str | None, new_name: str, old_name: str
) -> str | None:
    """The value of ``new_name``, or of its deprecated spelling ``old_name``."""
    if old is None:
        return new
    if new is not None and new != old:
        raise InvalidInput(f"{old_name} {old} conflicts with {new_name} {new}")
    app_ctx.terminal.warning(f"{old_name} is deprecated; use {new_name}")
    return old

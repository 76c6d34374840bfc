"""How every listing pages: one page size rule and a walk over keyset pages.

``users list``, ``keys list`` and ``audit list`` make the same promise
(docs/architecture.md §5): a listing without a limit is every matching row,
and a listing with one says where the rest is (its next cursor).  Each
group's service fetches one keyset page per transaction; :class:`Listing`
walks those pages one after another, so a listing of any length holds one
page in memory, never the whole result.

This module imports nothing heavy: the command line reads the limits from
here to state them in ``--help`` without loading SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Final, Generic, TypeVar

from vutf_cli.errors import InvalidInput

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "STREAM_BATCH", "Listing", "check_limit"]

T = TypeVar("T")

# A table's page when no --limit is given.
DEFAULT_PAGE_SIZE: Final = 100
# The largest --limit of every list.
MAX_PAGE_SIZE: Final = 100_000
# Rows fetched per transaction while walking a listing.
STREAM_BATCH: Final = 500

# fetch(cursor, size) -> (at most ``size`` rows after ``cursor``, the cursor after them
# when more rows follow, else None).
PageFetcher = Callable[[str | None, int], tuple[Sequence[T], str | None]]


def check_limit(limit: int) -> int:
    """``limit`` if it is a page size every list accepts, else InvalidInput (exit 2)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"--limit must be between 1 and {MAX_PAGE_SIZE} (got {limit})")
    return limit


class Listing(Generic[T]):
    """The rows after ``cursor``: every one, or the first ``limit``; iterate once.

    The first page is fetched when the listing is made, so bad filters, an
    unknown user or a foreign cursor fail before anything is written; the
    others are fetched while the rows are consumed.  After iteration,
    :attr:`next_cursor` continues after the last row given when ``limit``
    stopped the walk and more rows follow, and is None otherwise.
    """

    def __init__(
        self,
        fetch: PageFetcher[T],
        *,
        cursor: str | None = None,
        limit: int | None = None,
        batch: int = STREAM_BATCH,
    ) -> None:
        if limit is not None:
            check_limit(limit)
        self._fetch = fetch
        self._remaining = limit
        self._batch = batch
        self.next_cursor: str | None = None
        self._first = self._page(cursor)

    def _page(self, cursor: str | None) -> tuple[Sequence[T], str | None]:
        size = self._batch if self._remaining is None else min(self._batch, self._remaining)
        rows, after = self._fetch(cursor, size)
        if self._remaining is not None:
            self._remaining -= len(rows)
        return rows, after

    def __iter__(self) -> Iterator[T]:
        rows, after = self._first
        while True:
            yield from rows
            if after is None:
                return
            if self._remaining == 0:
                self.next_cursor = after
                return
            rows, after = self._page(after)

"""The pager behind long tables on a terminal (README "Tables").

Only what a list or show command writes in a table (``-o table`` or
``wide``) to a terminal is paged, through ``$VUTF_PAGER``, else ``$PAGER``,
else ``less -FRX`` (``-F``: a table that fits one screen is simply printed;
``-R``: bold headers; ``-X``: it stays on the screen afterwards).
``VUTF_PAGER=cat`` (or empty) and ``--no-pager`` turn it off; a pipe, a
file and the machine formats are never paged.  The pager reads what
vutf writes as it is written, so a long table starts showing at once.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Mapping
from typing import Final, TextIO, cast

from vutf_cli.settings import ENV_PAGER

__all__ = ["DEFAULT_PAGER", "Pager", "pager_command"]

DEFAULT_PAGER: Final = "less -FRX"
# What turns paging off when named as the pager.
_NO_PAGER: Final = frozenset({"", "cat"})


def pager_command(environ: Mapping[str, str] | None = None) -> list[str] | None:
    """The pager's argv, or None when paging is off."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_PAGER)
    if text is None:
        text = env.get("PAGER", DEFAULT_PAGER)
    try:
        argv = shlex.split(text)
    except ValueError:
        # An unbalanced quote in $PAGER: show the table rather than fail.
        return None
    if not argv or " ".join(argv) in _NO_PAGER:
        return None
    return argv


class Pager:
    """A running pager: write to :attr:`stdin`; :meth:`close` waits for the reader to quit."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process

    @classmethod
    def start(cls, argv: list[str], encoding: str) -> Pager | None:
        """The pager, or None when it cannot be started (the table is then printed)."""
        env = dict(os.environ)
        # As git does: a bare `less` (or `lv`) still shows bold and leaves short output be.
        env.setdefault("LESS", "FRX")
        env.setdefault("LV", "-c")
        try:
            # The terminal's encoding, and as on the terminal itself
            # (cli.standard_streams), what it cannot show is a visible escape.
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                text=True,
                encoding=encoding,
                errors="backslashreplace",
                env=env,
            )
        except OSError:
            return None
        return cls(process)

    @property
    def stdin(self) -> TextIO:
        stream = self._process.stdin
        assert stream is not None  # started with stdin=PIPE
        # A text-mode pipe (text=True): a TextIOWrapper, which is a TextIO.
        return cast(TextIO, stream)

    def close(self) -> None:
        """End the input and wait until the operator leaves the pager."""
        with contextlib.suppress(BrokenPipeError):  # the operator quit before the end
            self.stdin.close()
        while True:
            try:
                self._process.wait()
                return
            except KeyboardInterrupt:
                # Ctrl-C belongs to the pager while it runs (less keeps going).
                continue

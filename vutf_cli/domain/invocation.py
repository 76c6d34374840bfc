"""Who is writing: the command that runs, as recorded in every audit row's metadata.

An audit row's ``metadata`` starts from what the process is and what it was
asked to do (docs/architecture.md §3.2)::

    {"host": "build-7", "os_user": "ci", "vutf_version": "0.1.0",
     "command": "users create", "options": ["--email", "--password-stdin"],
     "request_id": "…"}

``command`` is the command path below ``vutf`` (words separated by one
space) and ``options`` the names of the options given on the command line
(not from the environment or a config file), each once, by its long name
when it has one (``--output`` for ``-o``; ``--inactive`` for the off side of
``--active/--inactive``): the global options first, then the command's, each
in the order they are declared.  Neither ever holds a value: the
append-only log could never forget a password typed into a URL or any other
argument, so the command line itself is not recorded.  Both keys are
absent when the writer is not a command (a library caller, such as a web
service, builds its ``Database`` without an :class:`Invocation`).

The shapes are checked here, so a value cannot be passed off as a name: a
path word other than lower-case letters, digits, ``-`` and ``_``, or an
option name other than ``-``/``--`` and letters, digits, ``-`` and ``_``
(an ``=``, a ``:``, a space, an ``@``…) is a programming error (ValueError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Invocation"]

_PATH_WORD: Final = re.compile(r"[a-z0-9][a-z0-9_-]*")
_OPTION_NAME: Final = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class Invocation:
    """The command path (``"users create"``) and the names of the options given.

    ``command`` None means "not a command": nothing of it is recorded, and
    ``options`` must then be empty.
    """

    command: str | None = None
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.command is not None:
            words = self.command.split(" ")
            if not all(_PATH_WORD.fullmatch(word) for word in words):
                raise ValueError(f"not a command path: {self.command!r}")
        elif self.options:
            raise ValueError("options given without a command")
        if not isinstance(self.options, tuple):
            raise ValueError("options must be a tuple of option names")
        for name in self.options:
            if not isinstance(name, str) or not _OPTION_NAME.fullmatch(name):
                # Never echo it: it may be a value that was meant to stay out.
                raise ValueError("not an option name (a name such as --email, never its value)")
        if len(set(self.options)) != len(self.options):
            raise ValueError("an option name is listed twice")

    def as_metadata(self) -> dict[str, Any]:
        """The ``command`` and ``options`` entries of an audit row's metadata ({} for none)."""
        if self.command is None:
            return {}
        return {"command": self.command, "options": list(self.options)}

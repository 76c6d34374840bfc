"""`vutf audit verify`: check the hash chain, from the start or a seq, against an anchor.

The rules (reordered, edited, missing, inserted, anchor) and what counts as
an edit are ``db.audit_verify``'s; this module parses the command line's
anchor, runs the check in one read-only transaction and turns a failed
report into exit 6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.validation import shorten_for_message
from vutf_cli.errors import IntegrityFailure, InvalidInput
from vutf_cli.security.audit_chain import GENESIS_HASH
from vutf_cli.services.audit import MAX_SEQ, AuditHead, check_seq

__all__ = ["VerifyResult", "chain_error", "parse_anchor", "verify"]

_ANCHOR: Final = re.compile(r"(\d+):([0-9a-fA-F]{64})")


def parse_anchor(text_: str) -> tuple[int, str] | None:
    """``SEQ:HASH`` (as printed by ``vutf audit head``) → ``(seq, hash)``.

    ``0:<genesis hash>`` (the head of an empty log) anchors nothing and gives None.
    """
    match = _ANCHOR.fullmatch(text_.strip()) if len(text_) < 200 else None
    if match is None or int(match.group(1)) > MAX_SEQ:
        raise InvalidInput(
            f"invalid anchor {shorten_for_message(text_)}",
            hint="use SEQ:HASH as printed by `vutf audit head` (HASH is 64 hex digits)",
        )
    seq, row_hash = int(match.group(1)), match.group(2).lower()
    if seq == 0:
        if row_hash != GENESIS_HASH:
            raise InvalidInput("an anchor at seq 0 must carry the genesis hash (64 zeros)")
        return None
    return seq, row_hash


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A chain check: what was walked, the head reached, and the first problem if any.

    ``head`` is ``seq:hash`` of the last row that verified (when the chain is
    intact, the log's head; ``0:<64 zeros>`` for an empty log), the value to
    record and pass back later as ``--anchor``.
    """

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head: str | None
    bad_seq: int | None
    problem: str | None  # edited | other_key | missing | reordered | inserted | anchor
    detail: str | None


def verify(
    db: Database, *, since_seq: int | None = None, anchor: tuple[int, str] | None = None
) -> VerifyResult:
    """Recompute the hash chain (the audit repository documents each kind of problem).

    ``anchor`` comes from :func:`parse_anchor`.
    """
    if since_seq is not None:
        check_seq("--since-seq", since_seq)
    if anchor is not None:
        check_seq("the anchor's seq", anchor[0])
    parsed_anchor = anchor

    def work(uow: UnitOfWork) -> VerifyResult:
        if since_seq is not None:
            _check_since_seq(since_seq, uow.audit.head())
        report = uow.audit.verify_chain(since_seq=since_seq, anchor=parsed_anchor)
        if report.last_seq is not None and report.head_hash is not None:
            reached: str | None = f"{report.last_seq}:{report.head_hash}"
        elif report.ok:
            # Nothing walked (an empty log): the head as it is.
            found = uow.audit.head()
            reached = AuditHead(*found).anchor if found else AuditHead(0, GENESIS_HASH).anchor
        else:
            reached = None
        return VerifyResult(
            ok=report.ok,
            checked=report.checked,
            first_seq=report.first_seq,
            last_seq=report.last_seq,
            head=reached,
            bad_seq=report.bad_seq,
            problem=report.problem,
            detail=report.detail,
        )

    return db.run(work, read_only=True)


def _check_since_seq(since_seq: int, found: tuple[int, str] | None) -> None:
    """InvalidInput (exit 2) for a --since-seq past the last row.

    Walking nothing would report "intact, 0 entries checked": a gate that
    passes by accident (a mistyped seq, the wrong database).  Say where the
    log ends instead.
    """
    if found is None:
        raise InvalidInput(
            f"--since-seq {since_seq} is beyond the end of the audit log: the log is empty",
            hint="check the database (vutf db status), or verify without --since-seq",
        )
    if since_seq > found[0]:
        raise InvalidInput(
            f"--since-seq {since_seq} is beyond the end of the audit log (last seq {found[0]})",
            hint=f"give a seq from 1 to {found[0]}",
        )


def chain_error(report: VerifyResult) -> IntegrityFailure:
    """The error (exit 6) for a failed report."""
    return IntegrityFailure(
        f"audit chain broken at seq {report.bad_seq}: {report.problem} ({report.detail})",
        hint=_OTHER_KEY_HINT
        if report.problem == "other_key"
        else "the log was changed outside vutf; keep this database for investigation",
    )


_OTHER_KEY_HINT: Final = (
    "verify with the VUTF_AUDIT_KEY the log was written with; if that is the key set here, "
    "the row was written by someone without it: keep this database for investigation"
)

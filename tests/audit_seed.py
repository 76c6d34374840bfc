"""Many chained audit rows, fast: multi-row INSERTs that compute the hash chain as vutf does.

Appending through ``uow.audit.append`` costs a transaction per row; tests that
need thousands of rows build them here instead.  Each row is made the way the
repository makes it (``changes`` and ``metadata`` in their stored form, the
hashed fields picked by ``hash_content``, ``compute_row_hash`` over them and
the previous row's hash, with the database's audit key), so ``vutf audit
verify`` accepts the result.  The benchmark seeder (tests/benchmarks/seed.py)
builds its rows in worker processes and loads them with COPY; it checks its
chain against ``compute_row_hash`` rather than sharing this loop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.repositories.audit import hash_content, stored_json
from vutf_cli.security.audit_chain import GENESIS_HASH, compute_row_hash

__all__ = ["SEED_START", "SEED_STEP", "RowMaker", "bulk_seed"]

AUDIT = cast(Table, AuditLog.__table__)
SEED_START = datetime(2024, 1, 1, tzinfo=UTC)
SEED_STEP = timedelta(minutes=1)

# ``make(seq)``: the fields of row ``seq`` that differ from the default row.
RowMaker = Callable[[int], dict[str, Any]]


def bulk_seed(
    db: Database,
    count: int,
    make: RowMaker | None = None,
    *,
    batch: int = 5000,
    start: datetime = SEED_START,
    step: timedelta = SEED_STEP,
) -> int:
    """Append ``count`` chained rows after the current head; returns the new head seq.

    Row ``seq`` is a successful ``user.create`` by ``seeder`` at
    ``start + seq * step``, with whatever ``make(seq)`` overrides.
    """
    found = db.run(lambda uow: uow.audit.head(), read_only=True)
    seq, prev = (0, GENESIS_HASH) if found is None else found
    key = db.settings.audit_key
    while count > 0:
        rows = []
        for _ in range(min(batch, count)):
            seq += 1
            values: dict[str, Any] = {
                "id": uuid.uuid4(),
                "seq": seq,
                "created_at": start + seq * step,
                "actor": "seeder",
                "user_id": None,
                "action": "user.create",
                "resource_type": "user",
                "resource_id": f"u{seq % 97}",
                "status": "success",
                "changes": {"n": seq, "name": f"row {seq}"},
                "metadata": {"host": "seed", "command": "bulk"},
                "error_message": None,
                "duration_ms": seq % 500,
                "ip_address": None,
                "user_agent": None,
            }
            if make is not None:
                values.update(make(seq))
            # Hashed in the form the database gives back, as the repository does.
            for name in ("changes", "metadata"):
                values[name] = stored_json(values[name])
            values["prev_hash"] = prev
            values["row_hash"] = prev = compute_row_hash(prev, hash_content(values), key)
            rows.append(values)
        with db.engine.begin() as conn:
            conn.execute(insert(AUDIT), rows)
        count -= len(rows)
    return seq

"""The head revision, known without importing Alembic.

Ordinary commands compare the ``alembic_version`` row with this constant; a
test asserts it equals the head that Alembic computes from alembic/versions.
"""

from __future__ import annotations

HEAD_REVISION = "0005_normalize_identities"

"""Fixtures of the end-to-end tests (the helpers they share are in :mod:`tests.e2e.harness`)."""

from __future__ import annotations

import pytest


@pytest.fixture
def benchmark_backends(postgres_template: str | None) -> tuple[str, ...]:
    """The backends a run of the benchmark runner covers.

    ``postgres_template`` is None when the server is unreachable (and fails the
    test when VUTF_REQUIRE_POSTGRES=1): then only SQLite is benchmarked.
    """
    return ("sqlite",) if postgres_template is None else ("sqlite", "postgresql")

"""``python -m tests.benchmarks``: see :mod:`tests.benchmarks.runner`."""

from __future__ import annotations

from tests.benchmarks.runner import main

raise SystemExit(main())

"""Benchmarks of the installed ``vutf`` against baselines measured in the same run.

Run them with ``python -m tests.benchmarks --rows 10000,100000,1000000 --backend both``
(see :mod:`tests.benchmarks.runner`).  They are not part of the default test
run (pytest does not collect this folder); ``tests/e2e/test_benchmark_smoke.py``
(the table) and ``tests/e2e/test_benchmark_notes_smoke.py`` (the notes under it)
run the runner at a tiny size and check its output, never its timings.
"""

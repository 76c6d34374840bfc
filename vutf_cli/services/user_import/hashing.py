"""Hashing many passwords at once: argon2id over a process pool.

argon2 is CPU-bound, so an import's plaintext passwords are spread over
worker processes.  A hashing worker imports this module (under ``spawn``),
so it stays free of SQLAlchemy.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final

__all__ = ["PARALLEL_THRESHOLD", "ProgressFactory", "hash_passwords"]

# Below this many plaintext passwords, starting worker processes costs more
# than it saves.
PARALLEL_THRESHOLD: Final = 8
# Most passwords handed to a hashing worker at once.
_MAX_CHUNK: Final = 16

# What Terminal.progress is: (total, description) -> context yielding advance(steps).
ProgressFactory = Callable[[int | None, str], AbstractContextManager[Callable[[int], None]]]

_worker_passwords: Any = None


def _init_worker(profile: str, min_length: int) -> None:
    global _worker_passwords  # one hasher per worker process
    from vutf_cli.security.passwords import Passwords

    _worker_passwords = Passwords(profile, min_length=min_length)


def _hash_in_worker(password: str) -> str:
    result: str = _worker_passwords.hash(password)
    return result


def _no_progress(_steps: int = 1) -> None:
    return None


def _bar(progress: ProgressFactory | None, total: int) -> AbstractContextManager[Any]:
    if progress is None:
        return nullcontext(_no_progress)
    return progress(total, "hashing passwords")


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork on Linux (cheap, nothing re-imported), spawn elsewhere.

    The pool's processes are started before the progress bar (and its
    refresh thread) exists, so the fork happens in a single-threaded process.
    spawn re-imports the main module in each worker, which is why it is not
    the first choice.
    """
    method = "fork" if sys.platform == "linux" else "spawn"
    return multiprocessing.get_context(method)


def hash_passwords(
    passwords: Sequence[str],
    *,
    profile: str,
    min_length: int,
    workers: int | None = None,
    progress: ProgressFactory | None = None,
) -> list[str]:
    """argon2id hashes of ``passwords``, in order.

    argon2 is CPU-bound, so with more than :data:`PARALLEL_THRESHOLD`
    passwords the work is spread over a process pool of ``workers`` processes
    (default ``os.cpu_count()``).  If the pool cannot be started the
    passwords are hashed here, one by one.  ``progress`` (like
    ``Terminal.progress``) shows a bar while hashing.
    """
    count = len(passwords)
    pool_size = min(workers if workers is not None else (os.cpu_count() or 1), count)
    if count > PARALLEL_THRESHOLD and pool_size > 1:
        try:
            return _hash_in_pool(passwords, profile, min_length, pool_size, progress)
        except (BrokenProcessPool, OSError):
            pass  # e.g. not allowed to start processes: do it here instead
    from vutf_cli.security.passwords import Passwords

    hasher = Passwords(profile, min_length=min_length)
    hashes = []
    with _bar(progress if count else None, count) as advance:
        for password in passwords:
            hashes.append(hasher.hash(password))
            advance(1)
    return hashes


def _hash_in_pool(
    passwords: Sequence[str],
    profile: str,
    min_length: int,
    pool_size: int,
    progress: ProgressFactory | None,
) -> list[str]:
    # Chunks, not one task per password, so IPC is paid per chunk; but small
    # ones, so the progress bar moves steadily and no worker sits idle at the
    # end while another finishes a long chunk (a hash costs far more than
    # passing a chunk around).
    chunk = max(1, min(_MAX_CHUNK, len(passwords) // (pool_size * 4)))
    with ProcessPoolExecutor(
        max_workers=pool_size,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(profile, min_length),
    ) as pool:
        # map() submits every chunk now, which starts the workers now.
        results = pool.map(_hash_in_worker, passwords, chunksize=chunk)
        hashes = []
        with _bar(progress, len(passwords)) as advance:
            for digest in results:
                hashes.append(digest)
                advance(1)
        return hashes

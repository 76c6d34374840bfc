"""Run one command and report its wall time and peak memory (run as ``python -I -S launcher.py``).

Why a separate, tiny process: on Linux a child's peak RSS (``ru_maxrss``)
starts from the RSS of the process that spawned it, since ``exec`` carries
the old address space's high-water mark over.  The runner has SQLAlchemy and
psycopg2 imported (tens of MiB), so a child it spawned directly would never
report less than that.  This launcher imports nothing but the standard
library's core (about 9 MiB), spawns the command, waits for it with
``wait4`` and prints one JSON line: ``{"seconds", "max_rss_kib",
"cpu_seconds", "exit_code"}`` (CPU time: user + system, of the command and
of the children it waited for, e.g. vutf's hashing workers).

Usage: ``launcher.py TIMEOUT STDERR_FILE PROGRAM [ARG...]``; the command's
stdin and stdout are ``/dev/null``, its stderr goes to STDERR_FILE, and it
gets the launcher's environment.  After TIMEOUT seconds, or on SIGTERM /
SIGINT, the command is killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def main(argv: list[str]) -> int:
    timeout = float(argv[0])
    stderr_path = argv[1]
    command = argv[2:]
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    started = time.perf_counter()
    pid = os.posix_spawnp(
        command[0],
        command,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0),
            (os.POSIX_SPAWN_DUP2, null, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ],
    )

    def kill(signum: int, frame: object) -> None:
        # Not contextlib.suppress: the launcher imports as little as it can.
        try:  # noqa: SIM105
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, kill)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    signal.setitimer(signal.ITIMER_REAL, 0)
    report = {
        "seconds": elapsed,
        "max_rss_kib": usage.ru_maxrss,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "exit_code": os.waitstatus_to_exitcode(status),
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

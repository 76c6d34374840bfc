"""Where the benchmarked programs are and the environment they run in.

Every child process (``vutf``, ``psql``, ``sqlite3``, the Python baselines)
gets the same isolated environment: no ``VUTF_*`` variable from the caller's
shell, a private config file and data directory (so no developer config is
read), ``NO_COLOR`` and a fixed terminal width.  The cheap ``test`` argon2
profile is set unless a case asks for the production one.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_admin_url() -> str:
    """The server the PostgreSQL benchmarks create their databases on."""
    return os.environ.get("VUTF_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def libpq_url(url: str) -> str:
    """``url`` as libpq (psql, psycopg2) spells it: no ``+driver`` in the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def vutf_executable() -> Path:
    """The installed console script next to the running interpreter."""
    path = Path(sys.executable).with_name("vutf")
    if not path.exists():
        raise SystemExit(f"vutf is not installed next to {sys.executable} (expected {path})")
    return path


def python_executable() -> str:
    return sys.executable


def tool(name: str) -> str | None:
    """The path of an external program (psql, sqlite3), or None when it is not installed."""
    return shutil.which(name)


def child_environment(
    home: Path,
    *,
    database_url: str | None = None,
    argon2_profile: str | None = "test",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """An isolated environment for one benchmarked process.

    ``argon2_profile=None`` leaves ``VUTF_ARGON2_PROFILE`` unset, i.e. vutf's
    production parameters.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("VUTF_")}
    for name in (
        "FORCE_COLOR",
        "CLICOLOR_FORCE",
        "PYTHONDEVMODE",
        "PYTHONTRACEMALLOC",
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(name, None)
    env.update(
        {
            # Bytecode as an installed package has it (pip compiles at install
            # time), for vutf and the baselines alike: compiled once by the
            # warm-up runs into the benchmark's own folder, nothing written
            # into the checkout.
            "PYTHONPYCACHEPREFIX": str(home / "pycache"),
            "VUTF_CONFIG": os.devnull,
            "VUTF_DATA_DIR": str(home / "data"),
            "VUTF_ACTOR": "bench@benchmarks",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    if database_url is not None:
        env["VUTF_DATABASE_URL"] = database_url
    if argon2_profile is not None:
        env["VUTF_ARGON2_PROFILE"] = argon2_profile
    if extra:
        env.update(extra)
    return env

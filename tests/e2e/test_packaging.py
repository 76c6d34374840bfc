"""The built wheel works on its own: migrations ship inside the package.

The top-level ``alembic/`` folder is force-included in the wheel as
``vutf_cli/_migrations`` (pyproject.toml), so an installed vutf finds its
scripts without the source checkout.  These tests build the wheel, install it
into a fresh virtual environment and use it from an empty directory.

How the fresh environment gets its dependencies without a network round
trip: it is created with ``python -m venv --without-pip``, the wheel is
installed into it with ``--no-deps`` by this interpreter's pip
(``pip --python <new venv>``), and a ``.pth`` file appends this test run's
site-packages to its ``sys.path`` for the third-party dependencies only.
A ``.pth`` line only adds a folder; it does not process the ``.pth`` files
inside it, so the editable install of this checkout (itself a ``.pth``) is not
picked up.  Because the new environment's own site-packages comes first, the
``vutf_cli`` imported there is the wheel's copy; a test asserts exactly that.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import vutf_cli
from vutf_cli.db.models import APP_TABLES
from vutf_cli.db.schema_version import HEAD_REVISION

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
# Every migration of the checkout must ship (a missing one would strand its databases).
MIGRATION_SCRIPTS = sorted((REPO_ROOT / "alembic" / "versions").glob("*.py"))
MIGRATION_FILES = ("env.py", *(f"versions/{path.name}" for path in MIGRATION_SCRIPTS))
TIMEOUT = 120


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    python: Path
    site_packages: Path
    workdir: Path  # empty: nothing of the checkout is importable from here


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(args: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env={**_clean_env(), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, (
        f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


def _build_wheel(outdir: Path) -> Path:
    if importlib.util.find_spec("build") is not None:
        command: list[str | Path] = [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--outdir",
            outdir,
            REPO_ROOT,
        ]
    else:
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", outdir, REPO_ROOT]
    _run(command, cwd=outdir)
    (wheel,) = outdir.glob("vutf-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("installed")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", python]
    _run([*pip, "install", "--no-deps", "--no-index", "--no-compile", wheel], cwd=root)
    site_packages = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root
        ).stdout.strip()
    )
    dependencies = Path(sysconfig.get_paths()["purelib"])
    (site_packages / "zz_vutf_test_dependencies.pth").write_text(f"{dependencies}\n")
    workdir = root / "empty-workdir"
    workdir.mkdir()
    return Installed(wheel, env_dir, python, site_packages, workdir)


def _python(installed: Installed, code: str, **env: str) -> str:
    return _run([installed.python, "-c", code], cwd=installed.workdir, **env).stdout.strip()


# -- the wheel's contents --------------------------------------------------------------
def test_wheel_carries_the_migrations_inside_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for relative in MIGRATION_FILES:
            packaged = archive.read(f"vutf_cli/_migrations/{relative}")
            # The very same scripts as the checkout's alembic/ folder: one set, not a copy.
            assert packaged == (REPO_ROOT / "alembic" / relative).read_bytes(), relative
        dist_info = f"vutf-{vutf_cli.__version__}.dist-info"
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()

    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"vutf_cli", dist_info}
    assert not any(name.startswith("alembic/") for name in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    assert "vutf = vutf_cli.cli.app:main" in entry_points


def test_wheel_ships_the_typed_python_api(wheel: Path) -> None:
    # PEP 561: without the marker a consumer's mypy ignores vutf's annotations.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read("vutf_cli/py.typed") == b""
    assert "vutf_cli/store.py" in names


def test_wheel_ships_the_identity_schema(wheel: Path) -> None:
    # `vutf plan`/`apply` validate identity files against it (issue 16).
    with zipfile.ZipFile(wheel) as archive:
        schema = json.loads(archive.read("vutf_cli/schemas/identity-v1.json"))
    assert schema["properties"]["apiVersion"] == {"const": "vutf/v1"}


# -- the installed package ----------------------------------------------------------
def test_installed_package_is_the_wheels_copy(installed: Installed) -> None:
    location = Path(_python(installed, "import vutf_cli; print(vutf_cli.__file__)"))
    assert location.is_relative_to(installed.site_packages)
    assert not location.resolve().is_relative_to(REPO_ROOT)
    version = _python(installed, "import vutf_cli; print(vutf_cli.__version__)")
    assert version == vutf_cli.__version__


def test_installed_package_exports_the_store(installed: Installed) -> None:
    exported = _python(
        installed,
        "import importlib.resources, vutf_cli.store as api;"
        "assert importlib.resources.files('vutf_cli').joinpath('py.typed').is_file();"
        "print(api.Store.__module__, sorted(api.__all__)[0])",
    )
    assert exported == "vutf_cli.store ApiKeyView"


def test_installed_package_reads_its_own_identity_schema(installed: Installed) -> None:
    found = _python(
        installed,
        "import importlib.resources as r;"
        "from vutf_cli.services.declarative.format import schema;"
        "print(r.files('vutf_cli.schemas').joinpath('identity-v1.json'), schema()['title'])",
    )
    path, _, title = found.partition(" ")
    assert Path(path).is_relative_to(installed.site_packages)
    assert title.startswith("vutf declarative identity")


def test_installed_package_finds_its_own_migrations(installed: Installed) -> None:
    location = Path(
        _python(
            installed,
            "from vutf_cli.db import migrations; print(migrations.script_location())",
        )
    )
    assert location == installed.site_packages / "vutf_cli" / "_migrations"
    assert (location / "env.py").is_file()
    head = _python(
        installed,
        "from vutf_cli.db import migrations, schema_version;"
        "assert migrations.head_revision() == schema_version.HEAD_REVISION;"
        "print(migrations.head_revision())",
    )
    assert head == HEAD_REVISION


def test_installed_package_migrates_a_fresh_sqlite_file(installed: Installed) -> None:
    database = installed.workdir.parent / "installed.db"
    url = f"sqlite:///{database}"
    code = (
        "from vutf_cli.db import migrations\n"
        "from vutf_cli.db.engine import make_engine\n"
        "from vutf_cli.settings import Settings\n"
        f"settings = Settings(database_url={url!r})\n"
        "engine = make_engine(settings)\n"
        "migrations.upgrade(settings, engine)\n"
        "migrations.check_drift(settings, engine)\n"
        "engine.dispose()\n"
        "print('migrated')\n"
    )
    assert _python(installed, code) == "migrated"

    connection = sqlite3.connect(database)
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    assert tables == {"alembic_version", *APP_TABLES}
    assert versions == [(HEAD_REVISION,)]
    assert list(installed.workdir.iterdir()) == []  # nothing written to the working directory


def test_installed_console_script_reports_its_version(installed: Installed) -> None:
    if not (REPO_ROOT / "vutf_cli" / "cli" / "app.py").exists():
        pytest.skip("vutf_cli/cli/app.py is not written yet; `vutf --version` has nothing to run")
    result = _run([installed.venv / "bin" / "vutf", "--version"], cwd=installed.workdir)
    assert vutf_cli.__version__ in result.stdout
    assert result.stderr == ""


def test_installed_console_script_upgrades_a_database(installed: Installed) -> None:
    if not (REPO_ROOT / "vutf_cli" / "cli" / "db.py").exists():
        pytest.skip("vutf_cli/cli/db.py is not written yet; `vutf db upgrade` has nothing to run")
    database = installed.workdir.parent / "via-cli.db"
    _run(
        [installed.venv / "bin" / "vutf", "db", "upgrade"],
        cwd=installed.workdir,
        VUTF_DATABASE_URL=f"sqlite:///{database}",
    )
    connection = sqlite3.connect(database)
    try:
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()
    assert versions == [(HEAD_REVISION,)]

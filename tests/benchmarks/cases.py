"""The benchmark cases: what vutf runs, what it is compared with, and the target.

A :class:`Group` is a set of commands measured together, interleaved run by
run (vutf, baseline, vutf, baseline, ...; the order flips every round to
cancel drift), so each baseline is measured in the same run and under the
same conditions as what it is compared with.  A :class:`Case` is one row of
the result table: the median of its subject command over the median of its
baseline command (``time`` cases), or the peak memory of its subject over
that of its baseline (``memory`` cases).

Case ids (``--cases`` takes globs over them), each as vutf versus its baseline:

* ``startup.help``: ``vutf --help`` vs ``python manage.py check`` of a Django
  project with the default apps (what an operator's other admin tool costs
  to start; Django comes with the ``test`` extra).
* ``startup.version``: ``vutf --version`` vs ``python manage.py version``.
* ``users.create``: ``vutf users create --superuser --password-file F`` vs
  ``python manage.py createsuperuser --noinput`` (password from
  ``DJANGO_SUPERUSER_PASSWORD``) of the same project, each on its own
  migrated SQLite file, the user deleted before every run, both hashing with
  argon2 at the same parameters (vutf's ``test`` profile).
* ``db.upgrade``: ``vutf db upgrade`` of a fresh SQLite file vs ``python
  manage.py migrate`` of a fresh SQLite file (the files are removed before
  every run).
* ``users.list``: ``vutf users list --json`` with 1,000 users vs
  ``python -c "import typer, sqlalchemy.orm"`` (``, psycopg2`` on PostgreSQL).
* ``users.import-hashed``: ``vutf users import`` of 10,000 users whose argon2
  hashes are given vs ``psql \\copy`` of the same rows (PostgreSQL), or
  ``sqlite3 .import`` of them into a table and ``INSERT ... SELECT`` into
  ``users`` (SQLite).
* ``users.import-plain``: ``vutf users import`` of 1,000 plaintext passwords
  at the production argon2 parameters vs hashing the same passwords in one
  process with argon2-cffi's RFC 9106 low-memory profile.
* ``audit.export``: ``vutf audit export --format jsonl`` vs ``psql -c "copy
  (select row_to_json(a) from audit_log a order by seq) to stdout"``, or the
  ``sqlite3`` CLI printing ``json_object(...)`` of every column per row.
* ``audit.verify``: ``vutf audit verify`` vs ``vutf audit export`` of the
  same rows.
* ``memory.export`` / ``memory.verify``: the peak RSS of ``audit export`` /
  ``audit verify`` at N rows vs the same command at the memory reference
  size (100k rows); also at most 100 MiB.
* ``audit.list-filtered``: ``vutf audit list --user U --action 'user.*'
  --since 30d --limit 50 --json`` vs the same at the list reference size
  (10k rows).
* ``audit.list-cursor``: ``vutf audit list --limit 50 --json --cursor C``
  deep in the log (the page that ends at seq 51) vs its first page.
* ``verify.throughput``: ``Store.verify_key`` from 8 threads of one process
  on PostgreSQL, audited: verifications per second and p50/p99 latency,
  reported in the notes under the table (:mod:`tests.benchmarks.verify_throughput`).
* ``auth.timing``: medians of 50 password checks each for an unknown user, a
  wrong password, a weak stored hash and a locked user, and their ratios
  (goal: within 10% of each other), in the notes (:mod:`tests.benchmarks.auth_timing`).
* ``batch.users-create``: 200 ``vutf users create --password-stdin`` as 200
  processes vs one ``vutf batch`` of the same lines, interleaved; wall and CPU
  ratios in the notes (:mod:`tests.benchmarks.batch_cases`).
* ``declarative.scale``: ``vutf plan`` (empty database), ``vutf apply --yes
  --secrets-dir`` and ``vutf plan`` again of a file of 10,000 users, 50 roles
  and 20,000 keys vs one ``vutf batch`` of the same creations; times, peak
  memory and ratios in the notes (:mod:`tests.benchmarks.declarative_scale`).
"""

from __future__ import annotations

import fnmatch
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tests.benchmarks.seed import BenchDatabase, Resources
    from tests.benchmarks.settings import Settings

CASE_IDS: Final = (
    "startup.help",
    "startup.version",
    "users.create",
    "db.upgrade",
    "users.list",
    "users.import-hashed",
    "users.import-plain",
    "audit.export",
    "audit.verify",
    "memory.export",
    "memory.verify",
    "audit.list-filtered",
    "audit.list-cursor",
    "verify.throughput",  # not a row of the table: tests.benchmarks.verify_throughput
    "auth.timing",  # not a row of the table: tests.benchmarks.auth_timing
    "batch.users-create",  # not a row of the table: tests.benchmarks.batch_cases
    "declarative.scale",  # not a row of the table: tests.benchmarks.declarative_scale
)
# The cases reported as notes under the table, each by a module of its own.
NOTE_CASES: Final = ("verify.throughput", "auth.timing", "batch.users-create", "declarative.scale")
TABLE_CASES: Final = tuple(case for case in CASE_IDS if case not in NOTE_CASES)
SIZED_CASES: Final = frozenset(
    {
        "audit.export",
        "audit.verify",
        "memory.export",
        "memory.verify",
        "audit.list-filtered",
        "audit.list-cursor",
    }
)
MEMORY_LIMIT_MIB: Final = 100.0

# The filters of audit.list-filtered: one of the seeded users, a glob (which
# the service serves through the action index), the last 30 of the 90 days.
LIST_USER_INDEX: Final = 7
LIST_ACTION: Final = "user.*"
LIST_SINCE: Final = "30d"
LIST_LIMIT: Final = 50

POSTGRES_EXPORT_SQL: Final = "copy (select row_to_json(a) from audit_log a order by seq) to stdout"
# With --before: each vutf command's twin, run with the older vutf, may be at
# most this much faster than the command itself.
BEFORE_TARGET: Final = 1.10


@dataclass(frozen=True)
class Command:
    """One program run as a whole process; ``before`` runs (untimed) before each run."""

    key: str
    label: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    before: Callable[[], None] | None = None


@dataclass
class Group:
    """Commands measured together, interleaved."""

    name: str
    commands: list[Command]
    repeat: int
    warmup: int


@dataclass(frozen=True)
class Case:
    """One row of the result table."""

    case: str
    size: str
    backend: str
    kind: str  # "time" or "memory"
    subject: str  # command key
    baseline: str  # command key
    target: float
    baseline_label: str
    limit_mib: float | None = None
    # "baseline", or "before": the same command run by the older vutf (--before).
    versus: str = "baseline"


@dataclass
class Plan:
    groups: list[Group] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)

    def add(self, group: Group | None, cases: Iterable[Case]) -> None:
        """Add a group of commands (if any) and the cases computed from them."""
        if group is not None:
            self.groups.append(group)
        self.cases.extend(cases)

    def prune(self) -> None:
        """Drop commands no case refers to, then groups left with no command."""
        used = {case.subject for case in self.cases} | {case.baseline for case in self.cases}
        for group in self.groups:
            group.commands = [c for c in group.commands if c.key in used]
        self.groups = [group for group in self.groups if group.commands]


def select_cases(patterns: str | None) -> list[str]:
    """The case ids matching any of the comma-separated globs (all when None)."""
    if not patterns:
        return list(CASE_IDS)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [
        case for case in CASE_IDS if any(fnmatch.fnmatchcase(case, pattern) for pattern in wanted)
    ]
    if not chosen:
        raise ValueError(f"no case matches {patterns!r}; the cases are: {', '.join(CASE_IDS)}")
    return chosen


def _delete_rows(path: Path, table: str) -> None:
    """Empty ``table`` of the SQLite file at ``path`` (before each run of a create case)."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(f"DELETE FROM {table}")
    finally:
        connection.close()


def sqlite_export_sql() -> str:
    """The sqlite3 baseline: one ``json_object`` per row, every column, in seq order."""
    from tests.benchmarks.seed import AUDIT_COLUMNS

    pairs = ", ".join(
        f"'{name}', json({name})" if name in ("changes", "metadata") else f"'{name}', {name}"
        for name in AUDIT_COLUMNS
    )
    return f"SELECT json_object({pairs}) FROM audit_log ORDER BY seq"


class Planner:
    """Turns the settings and the seeded databases into groups of commands and cases."""

    def __init__(self, settings: Settings, resources: Resources) -> None:
        from tests.benchmarks.environment import python_executable, vutf_executable

        self.settings = settings
        self.resources = resources
        self.plan = Plan()
        self.vutf = str(vutf_executable())
        self.python = python_executable()
        # Commands measured in export/verify groups, for the memory cases.
        self._export_commands: dict[tuple[str, int], tuple[Command, Command]] = {}

    # -- helpers -------------------------------------------------------------------------
    def env(self, database: BenchDatabase | None = None, **options: Any) -> dict[str, str]:
        from tests.benchmarks.environment import child_environment

        url = None if database is None else database.url
        return child_environment(self.resources.home, database_url=url, **options)

    def vutf_command(
        self,
        key: str,
        args: Iterable[str],
        database: BenchDatabase | None = None,
        *,
        label: str | None = None,
        before: Callable[[], None] | None = None,
        **env_options: Any,
    ) -> Command:
        argv = (self.vutf, *args)
        shown = label or "vutf " + " ".join(argv[1:])
        return Command(key, shown, argv, self.env(database, **env_options), before)

    def python_command(self, key: str, code: str, *args: str, label: str) -> Command:
        return Command(key, label, (self.python, "-c", code, *args), self.env())

    @staticmethod
    def time_case(
        case: str, size: str, backend: str, subject: Command, baseline: Command, target: float
    ) -> Case:
        return Case(case, size, backend, "time", subject.key, baseline.key, target, baseline.label)

    def note(self, text: str) -> None:
        if text not in self.resources.notes:
            self.resources.notes.append(text)

    def group(self, name: str, commands: list[Command], *, heavy: bool = False) -> Group:
        settings = self.settings
        if heavy:
            return Group(name, commands, settings.heavy_repeat, 0)
        return Group(name, commands, settings.repeat, settings.warmup)

    # -- the plan --------------------------------------------------------------------------
    def build(self) -> Plan:
        settings = self.settings
        self.startup()
        self.create_and_upgrade()
        for backend in settings.backends:
            self.users_list(backend)
            self.import_hashed(backend)
            self.import_plain(backend)
        for backend in settings.backends:
            for rows in settings.audit_sizes():
                self.audit_export(backend, rows)
                self.audit_list(backend, rows)
        for backend in settings.backends:
            for rows in settings.audit_sizes():
                self.memory(backend, rows)
        if settings.before is not None:
            self.pair_with_before(str(settings.before))
        self.plan.prune()
        return self.plan

    def pair_with_before(self, before: str) -> None:
        """Give every vutf command a twin run by the older vutf, in the same group.

        The twin is measured interleaved with the command itself, so each case
        gains a row ``CASE vs before``: this vutf over the older one.
        """
        twins: dict[str, Command] = {}
        for group in self.plan.groups:
            for command in list(group.commands):
                if command.argv[0] != self.vutf:
                    continue
                twin = Command(
                    command.key + "/before",
                    "the same with the older vutf",
                    (before, *command.argv[1:]),
                    command.env,
                    command.before,
                )
                twins[command.key] = twin
                group.commands.append(twin)
        self.plan.cases.extend(
            Case(
                case.case,
                case.size,
                case.backend,
                case.kind,
                case.subject,
                twins[case.subject].key,
                BEFORE_TARGET,
                twins[case.subject].label,
                versus="before",
            )
            for case in list(self.plan.cases)
            if case.subject in twins
        )

    def startup(self) -> None:
        from tests.benchmarks.django_baseline import django_available, make_project

        wants = self.settings.wants
        if not wants("startup.help", "startup.version"):
            return
        if not django_available():
            self.note("startup.* skipped: Django is not installed (pip install '.[test]')")
            return
        manage = str(make_project(self.resources.workdir / "django"))
        check = Command(
            "startup/django-check",
            "python manage.py check (Django, default apps)",
            (self.python, manage, "check"),
            self.env(),
        )
        django_version = Command(
            "startup/django-version",
            "python manage.py version (Django, default apps)",
            (self.python, manage, "version"),
            self.env(),
        )
        help_ = self.vutf_command("startup/help", ["--help"])
        version = self.vutf_command("startup/version", ["--version"])
        cases = [
            self.time_case(case, "-", "-", subject, baseline, 1.0)
            for case, subject, baseline in (
                ("startup.help", help_, check),
                ("startup.version", version, django_version),
            )
            if wants(case)
        ]
        self.plan.add(self.group("start-up", [help_, check, version, django_version]), cases)

    def create_and_upgrade(self) -> None:
        """``users.create`` and ``db.upgrade``: vutf vs Django, each side on its own SQLite file."""
        from tests.benchmarks.django_baseline import (
            database_path,
            django_available,
            make_project,
        )
        from tests.benchmarks.seed import run_vutf_checked

        wants = self.settings.wants
        if not wants("users.create", "db.upgrade"):
            return
        if not django_available():
            self.note("users.create, db.upgrade skipped: Django is not installed")
            return
        workdir = self.resources.workdir
        commands: list[Command] = []
        cases: list[Case] = []
        if wants("users.create"):
            password = "correct horse battery staple"
            password_file = workdir / "create-password.txt"
            password_file.write_text(password, encoding="utf-8")
            vutf_file = workdir / "create-vutf.db"
            vutf_url = f"sqlite:///{vutf_file}"
            run_vutf_checked(self.resources.home, vutf_url, ["db", "upgrade"])
            django_dir = workdir / "django-create"
            manage = str(make_project(django_dir))
            django_env = self.env()
            subprocess.run(
                (self.python, manage, "migrate", "--noinput"),
                env=django_env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                check=True,
            )
            create = Command(
                "create/vutf",
                "vutf users create --superuser --password-file F (sqlite)",
                (
                    self.vutf,
                    "users",
                    "create",
                    "bench-admin",
                    "--email",
                    "admin@example.com",
                    "--superuser",
                    "--password-file",
                    str(password_file),
                ),
                {**self.env(), "VUTF_DATABASE_URL": vutf_url},
                lambda: _delete_rows(vutf_file, "users"),
            )
            createsuperuser = Command(
                "create/django",
                "python manage.py createsuperuser --noinput (Django, same argon2)",
                (
                    self.python,
                    manage,
                    "createsuperuser",
                    "--noinput",
                    "--username",
                    "bench-admin",
                    "--email",
                    "admin@example.com",
                ),
                {**django_env, "DJANGO_SUPERUSER_PASSWORD": password},
                lambda: _delete_rows(database_path(django_dir), "auth_user"),
            )
            commands += [create, createsuperuser]
            cases.append(
                self.time_case("users.create", "-", "sqlite", create, createsuperuser, 1.0)
            )
        if wants("db.upgrade"):
            upgrade_file = workdir / "upgrade-vutf.db"
            upgrade = Command(
                "upgrade/vutf",
                "vutf db upgrade (fresh sqlite file)",
                (self.vutf, "db", "upgrade"),
                {**self.env(), "VUTF_DATABASE_URL": f"sqlite:///{upgrade_file}"},
                lambda: upgrade_file.unlink(missing_ok=True),
            )
            migrate_dir = workdir / "django-migrate"
            migrate_manage = str(make_project(migrate_dir))
            migrate = Command(
                "upgrade/django",
                "python manage.py migrate (Django, default apps, fresh sqlite file)",
                (self.python, migrate_manage, "migrate", "--noinput"),
                self.env(),
                lambda: database_path(migrate_dir).unlink(missing_ok=True),
            )
            commands += [upgrade, migrate]
            cases.append(self.time_case("db.upgrade", "-", "sqlite", upgrade, migrate, 1.0))
        self.plan.add(self.group("users create, db upgrade (sqlite)", commands), cases)

    def users_list(self, backend: str) -> None:
        if not self.settings.wants("users.list"):
            return
        modules = "typer, sqlalchemy.orm" + (", psycopg2" if backend == "postgresql" else "")
        listing = self.vutf_command(
            f"users-list/{backend}/vutf",
            ["users", "list", "--json"],
            self.resources.users[backend],
        )
        imports = self.python_command(
            f"users-list/{backend}/imports",
            f"import {modules}",
            label=f'python -c "import {modules}"',
        )
        target = 1.35 if backend == "postgresql" else 1.25
        size = f"{self.settings.users} users"
        self.plan.add(
            self.group(f"users list ({backend})", [listing, imports]),
            [self.time_case("users.list", size, backend, listing, imports, target)],
        )

    def _fresh_import_target(self, backend: str) -> tuple[BenchDatabase, Callable[[], None]]:
        from tests.benchmarks.seed import truncate_users

        database = self.resources.imports[backend]
        return database, lambda: truncate_users(database)

    def import_hashed(self, backend: str) -> None:
        files = self.resources.files
        if not self.settings.wants("users.import-hashed"):
            return
        assert files is not None
        database, fresh = self._fresh_import_target(backend)
        vutf_import = self.vutf_command(
            f"import-hashed/{backend}/vutf",
            ["users", "import", str(files.hashed_csv)],
            database,
            label=f"vutf users import {files.hashed_csv.name}",
            before=fresh,
        )
        if backend == "postgresql":
            baseline = self._psql_copy_users(database, fresh)
            target = 3.0
        else:
            baseline = self._sqlite3_import_users(database, fresh)
            target = 4.0
        if baseline is None:
            return
        size = f"{files.hashed_count} users"
        self.plan.add(
            self.group(f"users import, hashes ({backend})", [vutf_import, baseline]),
            [self.time_case("users.import-hashed", size, backend, vutf_import, baseline, target)],
        )

    def _psql_copy_users(
        self, database: BenchDatabase, fresh: Callable[[], None]
    ) -> Command | None:
        """``psql \\copy`` of every column of the imported users into ``users``."""
        from tests.benchmarks.environment import tool
        from tests.benchmarks.seed import COPY_COLUMNS

        files = self.resources.files
        assert files is not None
        psql = tool("psql")
        if psql is None:
            self.note("users.import-hashed skipped on postgresql: psql is not installed")
            return None
        copy_statement = (
            f"\\copy users ({', '.join(COPY_COLUMNS)}) from '{files.hashed_copy_csv}' "
            "with (format csv, header true)"
        )
        return Command(
            "import-hashed/postgresql/psql",
            "psql \\copy of the same rows into users",
            (
                psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database.psql_url,
                "-c",
                copy_statement,
            ),
            self.env(),
            fresh,
        )

    def _sqlite3_import_users(
        self, database: BenchDatabase, fresh: Callable[[], None]
    ) -> Command | None:
        """``sqlite3 .import`` of the same rows into a table, then ``INSERT ... SELECT`` into users.

        The CSV's booleans (``true``/``false``) and ISO times become the
        stored forms (0/1, ``YYYY-MM-DD HH:MM:SS.ffffff``) in the SELECT.
        """
        from tests.benchmarks.environment import tool
        from tests.benchmarks.seed import COPY_COLUMNS

        files = self.resources.files
        assert files is not None
        sqlite3_cli = tool("sqlite3")
        if sqlite3_cli is None or database.sqlite_path is None:
            self.note("users.import-hashed skipped on sqlite: the sqlite3 CLI is not installed")
            return None

        def value(name: str) -> str:
            if name in ("is_active", "is_superuser", "is_verified", "is_deleted"):
                return f"{name} = 'true'"
            if name in ("created_at", "updated_at"):
                return f"substr(replace({name}, 'T', ' '), 1, 26)"
            return name

        columns = ", ".join(COPY_COLUMNS)
        insert = (
            f"INSERT INTO users ({columns}) "
            f"SELECT {', '.join(value(name) for name in COPY_COLUMNS)} FROM users_import"
        )
        return Command(
            "import-hashed/sqlite/sqlite3",
            "sqlite3 .import of the same rows, then INSERT ... SELECT into users",
            (
                sqlite3_cli,
                "-bail",
                str(database.sqlite_path),
                "DROP TABLE IF EXISTS users_import",
                f".import --csv {files.hashed_copy_csv} users_import",
                insert,
                "DROP TABLE users_import",
            ),
            self.env(),
            fresh,
        )

    def import_plain(self, backend: str) -> None:
        from tests.benchmarks.seed import HASH_BASELINE_SCRIPT

        settings = self.settings
        files = self.resources.files
        if not settings.wants("users.import-plain"):
            return
        assert files is not None
        if backend != settings.backends[0]:
            # Hashing is nearly all of it on any backend, and it is the slowest case.
            self.note(
                f"users.import-plain ran on {settings.backends[0]} only (argon2 dominates it)"
            )
            return
        database, fresh = self._fresh_import_target(backend)
        vutf_import = self.vutf_command(
            f"import-plain/{backend}/vutf",
            ["users", "import", str(files.plain_csv)],
            database,
            label=f"vutf users import {files.plain_csv.name} (production argon2)",
            before=fresh,
            argon2_profile=None,  # unset: vutf's production parameters
        )
        hashing = self.python_command(
            f"import-plain/{backend}/argon2",
            HASH_BASELINE_SCRIPT,
            str(files.plain_csv),
            label="the same passwords hashed in one process (argon2-cffi, RFC_9106_LOW_MEMORY)",
        )
        size = f"{files.plain_count} users"
        self.plan.add(
            self.group(f"users import, plaintext ({backend})", [vutf_import, hashing], heavy=True),
            [self.time_case("users.import-plain", size, backend, vutf_import, hashing, 0.6)],
        )

    def _export_baseline(self, backend: str, database: BenchDatabase, key: str) -> Command | None:
        from tests.benchmarks.environment import tool

        if backend == "postgresql":
            psql = tool("psql")
            if psql is None:
                return None
            argv = (psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database.psql_url)
            return Command(
                key,
                f'psql -c "{POSTGRES_EXPORT_SQL}"',
                (*argv, "-c", POSTGRES_EXPORT_SQL),
                self.env(),
            )
        sqlite3_cli = tool("sqlite3")
        if sqlite3_cli is None or database.sqlite_path is None:
            return None
        return Command(
            key,
            "sqlite3 printing json_object(...) of every column per row",
            (sqlite3_cli, "-batch", "-noheader", str(database.sqlite_path), sqlite_export_sql()),
            self.env(),
        )

    def audit_export(self, backend: str, rows: int) -> None:
        """export vs psql/sqlite3, verify vs export: one group, so verify reuses export's runs."""
        settings = self.settings
        database = self.resources.audit[(backend, rows)]
        size = f"{rows} rows"
        prefix = f"audit/{backend}/{rows}"
        export = self.vutf_command(
            f"{prefix}/export", ["audit", "export", "--format", "jsonl"], database
        )
        verify = self.vutf_command(f"{prefix}/verify", ["audit", "verify"], database)
        self._export_commands[(backend, rows)] = (export, verify)
        commands = [export, verify]
        cases = []
        if settings.wants("audit.export"):
            baseline = self._export_baseline(backend, database, f"{prefix}/baseline")
            if baseline is None:
                missing = "psql" if backend == "postgresql" else "sqlite3"
                self.note(f"audit.export on {backend} skipped: {missing} is not installed")
            else:
                commands.insert(1, baseline)
                target = 1.25 if backend == "postgresql" else 1.5
                cases.append(
                    self.time_case("audit.export", size, backend, export, baseline, target)
                )
        if settings.wants("audit.verify"):
            cases.append(self.time_case("audit.verify", size, backend, verify, export, 1.3))
        name = f"audit export/verify ({backend}, {size})"
        self.plan.add(self.group(name, commands, heavy=settings.heavy(rows)), cases)

    def audit_list(self, backend: str, rows: int) -> None:
        from vutf_cli.services.audit import encode_cursor

        settings = self.settings
        database = self.resources.audit[(backend, rows)]
        size = f"{rows} rows"
        prefix = f"audit/{backend}/{rows}"
        commands: list[Command] = []
        cases: list[Case] = []
        reference_rows = settings.list_reference
        if settings.wants("audit.list-filtered") and rows != reference_rows:
            reference = self.resources.audit[(backend, reference_rows)]
            user = reference.users[LIST_USER_INDEX % len(reference.users)].username
            args = ["audit", "list", "--user", user, "--action", LIST_ACTION]
            args += ["--since", LIST_SINCE, "--limit", str(LIST_LIMIT), "--json"]
            label = (
                f"vutf audit list --user {user} --action '{LIST_ACTION}' --since {LIST_SINCE} "
                f"--limit {LIST_LIMIT} --json"
            )
            filtered = self.vutf_command(f"{prefix}/list-filtered", args, database, label=label)
            at_reference = self.vutf_command(
                f"{prefix}/list-filtered-reference",
                args,
                reference,
                label=f"the same at {reference_rows} rows",
            )
            commands += [filtered, at_reference]
            cases.append(
                self.time_case("audit.list-filtered", size, backend, filtered, at_reference, 1.15)
            )
        if settings.wants("audit.list-cursor"):
            # The page that ends at seq 51: as deep as a newest-first walk goes.
            deep_seq = max(2, min(2 * LIST_LIMIT + 1, rows))
            page = ["audit", "list", "--limit", str(LIST_LIMIT), "--json"]
            first = self.vutf_command(f"{prefix}/list-first", page, database)
            deep = self.vutf_command(
                f"{prefix}/list-deep",
                [*page, "--cursor", encode_cursor(deep_seq, descending=True)],
                database,
                label=f"vutf audit list --limit {LIST_LIMIT} --json --cursor <seq {deep_seq}>",
            )
            commands += [deep, first]
            cases.append(self.time_case("audit.list-cursor", size, backend, deep, first, 1.15))
        if commands:
            self.plan.add(self.group(f"audit list ({backend}, {size})", commands), cases)

    def memory(self, backend: str, rows: int) -> None:
        """Peak RSS at ``rows`` vs the same command at the reference size (no runs of its own)."""
        settings = self.settings
        if not settings.wants("memory.export", "memory.verify"):
            return  # the reference size was not seeded
        reference_rows = settings.memory_reference
        export, verify = self._export_commands[(backend, rows)]
        reference_export, reference_verify = self._export_commands[(backend, reference_rows)]
        compared_with = f"the same at {reference_rows} rows"
        cases = [
            Case(
                case,
                f"{rows} rows",
                backend,
                "memory",
                subject.key,
                reference.key,
                1.1,
                compared_with,
                MEMORY_LIMIT_MIB,
            )
            for case, subject, reference in (
                ("memory.export", export, reference_export),
                ("memory.verify", verify, reference_verify),
            )
            if settings.wants(case)
        ]
        self.plan.add(None, cases)

"""Settings resolved once per process: flags > environment > config file > defaults.

Every environment variable vutf reads is named here, and nowhere else, so the
README's configuration table and this module cannot drift apart.  This module
is imported on every command, so it stays cheap: no SQLAlchemy, no Rich.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, unquote_plus

from vutf_cli.errors import InvalidInput
from vutf_cli.input_documents import read_document_stream
from vutf_cli.output_formats import DEFAULT_OUTPUT_FORMAT, check_output_format

# Environment variable names (documented in the README).
ENV_DATABASE_URL = "VUTF_DATABASE_URL"
ENV_OUTPUT = "VUTF_OUTPUT"
ENV_ACTOR = "VUTF_ACTOR"
ENV_CONFIG = "VUTF_CONFIG"
ENV_DB_DEADLINE = "VUTF_DB_DEADLINE"
ENV_CONNECT_TIMEOUT = "VUTF_CONNECT_TIMEOUT"
ENV_STATEMENT_TIMEOUT = "VUTF_STATEMENT_TIMEOUT"
ENV_ARGON2_PROFILE = "VUTF_ARGON2_PROFILE"
ENV_MIN_PASSWORD_LENGTH = "VUTF_MIN_PASSWORD_LENGTH"
ENV_AUDIT_KEY = "VUTF_AUDIT_KEY"
ENV_KEY_PEPPER = "VUTF_KEY_PEPPER"
ENV_DATA_DIR = "VUTF_DATA_DIR"
# Read by the command line (cli/context.py): the zone of tables and of times typed
# without one (vutf_cli/domain/time_input.py).
ENV_TIMEZONE = "VUTF_TIMEZONE"
ENV_LOCKOUT_THRESHOLD = "VUTF_LOCKOUT_THRESHOLD"
ENV_LOCKOUT_WINDOW = "VUTF_LOCKOUT_WINDOW"
ENV_LOCKOUT_DURATION = "VUTF_LOCKOUT_DURATION"
ENV_NO_COLOR = "NO_COLOR"
# Read by the output layer (vutf_cli/output/pager.py): the pager of long tables.
ENV_PAGER = "VUTF_PAGER"

# Settings that may come from the config file, with the type each must have.
_FILE_KEYS: dict[str, type | tuple[type, ...]] = {
    "database_url": str,
    "output": str,
    "actor": str,
    "db_deadline": (int, float),
    "connect_timeout": (int, float),
    "statement_timeout_ms": int,
    "pool_size": int,
    "max_overflow": int,
    "argon2_profile": str,
    "min_password_length": int,
    "audit_key": str,
    "key_pepper": str,
    "lockout_threshold": int,
    "lockout_window": int,
    "lockout_duration": int,
}


@dataclass(frozen=True)
class _Range:
    """The values a numeric setting may take; anything else is exit 2 at start-up."""

    low: int
    high: int
    what: str
    low_included: bool = True

    def admits(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False  # (an int of any size compares exactly, never through float)
        above = value >= self.low if self.low_included else value > self.low
        return above and value <= self.high

    def describe(self) -> str:
        if self.low_included:
            return f"{self.what} from {self.low} to {self.high}"
        return f"{self.what} above {self.low} and at most {self.high}"


# A deadline or timeout that is not a finite, positive number would retry or wait forever;
# the upper bounds keep every derived value (SQLite's busy_timeout in milliseconds,
# PostgreSQL's int4 statement_timeout) representable.
_RANGES: dict[str, _Range] = {
    "db_deadline": _Range(0, 3600, "a number of seconds", low_included=False),
    "connect_timeout": _Range(0, 3600, "a number of seconds", low_included=False),
    "statement_timeout_ms": _Range(1, 2**31 - 1, "a whole number of milliseconds"),
    "min_password_length": _Range(8, 1024, "a whole number of characters"),
    "pool_size": _Range(1, 1000, "a whole number of connections"),
    "max_overflow": _Range(0, 1000, "a whole number of connections"),
    # Lockout (services/lockout.py): 0 failures turns it off; a window or lock of
    # up to 30 days.
    "lockout_threshold": _Range(0, 1000, "a whole number of failed attempts"),
    "lockout_window": _Range(1, 2_592_000, "a whole number of seconds"),
    "lockout_duration": _Range(1, 2_592_000, "a whole number of seconds"),
}
_ENV_NUMBERS = {
    "db_deadline": ENV_DB_DEADLINE,
    "connect_timeout": ENV_CONNECT_TIMEOUT,
    "statement_timeout_ms": ENV_STATEMENT_TIMEOUT,
    "min_password_length": ENV_MIN_PASSWORD_LENGTH,
    "lockout_threshold": ENV_LOCKOUT_THRESHOLD,
    "lockout_window": ENV_LOCKOUT_WINDOW,
    "lockout_duration": ENV_LOCKOUT_DURATION,
}


def _check_number(key: str, value: float, source: str, shown: str) -> None:
    allowed = _RANGES[key]
    if not allowed.admits(value):
        if len(shown) > 40:
            shown = shown[:40] + "…"
        raise InvalidInput(f"{source} must be {allowed.describe()}, got {shown}")


def default_actor() -> str:
    """``$USER@host``, the actor recorded in audit rows when none is given."""
    # getpass.getuser() reads these variables first; the module (and socket)
    # are only imported when they are all unset, or on a platform without uname.
    user = next(
        (
            os.environ[name]
            for name in ("LOGNAME", "USER", "LNAME", "USERNAME")
            if os.environ.get(name)
        ),
        None,
    )
    if user is None:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"{user}@{_host_name()}"


def _host_name() -> str:
    if hasattr(os, "uname"):
        return os.uname().nodename  # what socket.gethostname() returns on POSIX
    import socket

    return socket.gethostname()


def data_dir() -> Path:
    """Where the embedded SQLite database lives (``VUTF_DATA_DIR`` overrides)."""
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return Path(explicit)
    import platformdirs

    return Path(platformdirs.user_data_dir("vutf", appauthor=False))


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The config file: ``VUTF_CONFIG``'s, else ``config.toml`` in the platform's folder."""
    explicit = (os.environ if env is None else env).get(ENV_CONFIG)
    if explicit:
        return Path(explicit)
    import platformdirs

    return Path(platformdirs.user_config_dir("vutf", appauthor=False)) / "config.toml"


def default_database_url() -> str:
    # Absolute, so that messages name the file wherever the command runs.
    return f"sqlite:///{data_dir().absolute() / 'vutf.db'}"


# -- database URLs ---------------------------------------------------------------------------
# What connects is SQLAlchemy's reading of a URL (make_url): after ``scheme://``, an optional
# userinfo ``user[:password]@``, the user running to the first ":" or "/", the password to the
# first "@" -- "#", "/", "?" and ":" included -- and the query after the next "?".  The masker
# hides what that reading calls a password, stretched to the *last* "@" (an unencoded "@" in
# a password would make its tail the host), and every password-like query parameter both in
# that reading and from the first "?" on; so a form :func:`resolve_database_url` refuses is
# still masked in the message refusing it.
_SCHEME = re.compile(r"[\w+]+://")
_USERINFO = re.compile(r"[^:/]*(?::(?P<password>[^@]*))?@")
_MASK = "***"


def _userinfo(url: str) -> tuple[int, re.Match[str] | None]:
    """Where the URL's authority starts, and SQLAlchemy's userinfo there (if any)."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    return start, _USERINFO.match(url, start)


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` slices of ``url`` that hold a password, in any reading."""
    start, userinfo = _userinfo(url)
    spans: list[tuple[int, int]] = []
    query_from = start
    if userinfo is not None:
        query_from = userinfo.end()
        if userinfo.group("password") is not None:
            query_from = url.rindex("@") + 1
            spans.append((userinfo.start("password"), query_from - 1))
    for question_mark in {url.find("?", query_from), url.find("?", start)} - {-1}:
        position = question_mark + 1
        for parameter in url[position:].split("&"):
            key, has_value, _ = parameter.partition("=")
            # password=, PASSWORD=, sslpassword=, pass%77ord=: as the query parser decodes them.
            if has_value and "password" in unquote_plus(key).lower():
                spans.append((position + len(key) + 1, position + len(parameter)))
            position += len(parameter) + 1
    return spans


def mask_url(url: str) -> str:
    """The URL with every password replaced by ``***`` (safe to print or log).

    The userinfo's password and ``password=``-like query parameters (any case,
    any number of them) are hidden; user, host, port, database and the other
    parameters are kept.
    """
    parts: list[str] = []
    shown_to = 0
    for begin, end in sorted(_secret_spans(url)):
        if begin > shown_to or not parts:  # touching or overlapping spans make one mask
            parts += [url[shown_to:begin], _MASK]
        shown_to = max(shown_to, end)
    return "".join(parts) + url[shown_to:]


def url_has_password(url: str) -> bool:
    return any(end > begin for begin, end in _secret_spans(url))


def resolve_database_url(url: str, source: str) -> str:
    """The database URL as vutf uses it, or exit 2 for a form that cannot be meant.

    ``source`` says where the URL came from (``--database-url``, the
    environment variable, the config file) for the message.  ``postgres://``
    is PostgreSQL; a relative SQLite path is made absolute (messages then name
    the file), unless it looks like an absolute path missing a slash.
    """
    if not url.strip():
        raise InvalidInput(
            f"{source} is empty: no database URL",
            hint="give a postgresql:// or sqlite:/// URL, or unset it for the default database",
        )
    if url.startswith(("postgres://", "postgres+")):
        url = "postgresql" + url[len("postgres") :]
    start, userinfo = _userinfo(url)
    if (
        userinfo is not None
        and (
            "@" in url[start : userinfo.end() - 1]  # an "@" in the user name
            or (userinfo.group("password") is not None and "@" in url[userinfo.end() :])
        )
    ):
        # libpq and SQLAlchemy would disagree on where the host starts, and the tail of a
        # password could become a host name shown in the driver's errors.
        raise InvalidInput(
            f"invalid database URL {mask_url(url)} ({source}): more than one '@'",
            hint="write '@' in a user name or password as %40 (and '%' as %25)",
        )
    if url.startswith(("sqlite:///", "sqlite+")) and "\x00" not in url:
        url = _absolute_sqlite_url(url, source)
    return url


def _absolute_sqlite_url(url: str, source: str) -> str:
    head, slashes, rest = url.partition(":///")
    database, has_query, query = rest.partition("?")
    if not slashes or not database or database.startswith(("/", "file:")):
        return url  # in memory, a URI filename, absolute, or malformed (make_url says so)
    if database == ":memory:":
        return url
    path = unquote(database)  # as SQLAlchemy decodes it
    try:
        absolute = str(Path.cwd() / path)
    except OSError:  # the working folder was removed: SQLite will say what it can
        return url
    first, has_folder, _ = path.partition("/")
    if (
        has_folder
        and first not in (".", "..")
        and not os.path.lexists(first)
        and os.path.isdir(os.sep + first)
    ):
        raise InvalidInput(
            f"{source}: sqlite:///{database} names {absolute}, but there is no folder "
            f"{first!r} here; did you mean /{path}?",
            hint=f"an absolute path takes four slashes: sqlite:////{database} "
            f"(or sqlite:///./{database} for this folder)",
        )
    # "%" and "?" are the only characters SQLAlchemy would read differently in a path.
    absolute = absolute.replace("%", "%25").replace("?", "%3F")
    return f"{head}:///{absolute}" + (f"?{query}" if has_query else "")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment."""

    # Secret-bearing fields stay out of repr(): a repr can end up in a traceback or a log.
    database_url: str = field(default_factory=default_database_url, repr=False)
    output: str = DEFAULT_OUTPUT_FORMAT
    actor: str = field(default_factory=default_actor)
    yes: bool = False
    quiet: bool = False
    no_color: bool = False
    debug: bool = False
    db_deadline: float = 15.0
    connect_timeout: float = 5.0
    statement_timeout_ms: int = 30_000
    pool_size: int = 5
    max_overflow: int = 5
    argon2_profile: str = "production"
    min_password_length: int = 15
    # OWASP-style defaults: 5 failures, each within 15 min of the previous, lock 15 min.
    lockout_threshold: int = 5
    lockout_window: int = 900
    lockout_duration: int = 900
    audit_key: str | None = field(default=None, repr=False)
    key_pepper: str | None = field(default=None, repr=False)
    config_file: str | None = None

    @property
    def masked_url(self) -> str:
        return mask_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_default_database(self) -> bool:
        """True for the embedded SQLite file, which vutf creates and migrates itself."""
        return self.database_url == default_database_url()

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_NO_CONFIG_HINT: Final = (
    f"unset {ENV_CONFIG} to read config.toml in the platform's config folder, "
    f"or set {ENV_CONFIG}=/dev/null for no config file"
)


def _read_config_file(path: Path, *, named: bool) -> dict[str, Any]:
    """The settings in the config file at ``path``; ``named``: ``VUTF_CONFIG`` names it."""
    name = f"config file {path}"
    try:
        with path.open("rb") as handle:
            raw = read_document_stream(handle, name)
    except (FileNotFoundError, NotADirectoryError):
        if named:
            # A typo there would otherwise run against the default database.
            raise InvalidInput(
                f"{name} does not exist ({ENV_CONFIG} names it)", hint=_NO_CONFIG_HINT
            ) from None
        return {}  # the platform's file is optional
    except OSError as exc:
        raise InvalidInput(f"cannot read {name}: {exc.strerror}") from None
    import tomllib  # only when there is a config file to read

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError, an int too long to read
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays and tables
        raise InvalidInput(f"config file {path} is not valid TOML: nested too deeply") from None
    # Accept either top-level keys or a [vutf] table.
    section = data.get("vutf", data)
    if not isinstance(section, dict):
        raise InvalidInput(f"config file {path}: [vutf] must be a table")
    result: dict[str, Any] = {}
    for key, value in section.items():
        expected = _FILE_KEYS.get(key)
        if expected is None:
            raise InvalidInput(
                f"config file {path}: unknown setting {key!r}",
                hint="known settings: " + ", ".join(sorted(_FILE_KEYS)),
            )
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidInput(f"config file {path}: {key} has the wrong type")
        if key in _RANGES and isinstance(value, int | float):
            _check_number(key, value, f"config file {path}: {key}", repr(value))
        result[key] = value
    url = result.get("database_url")
    secrets_held = [
        what
        for what, held in (
            ("a database password", isinstance(url, str) and url_has_password(url)),
            ("the API key pepper", bool(result.get("key_pepper"))),
            ("the audit key", bool(result.get("audit_key"))),
        )
        if held
    ]
    if secrets_held:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput(
                f"config file {path} holds {' and '.join(secrets_held)} but is readable by "
                f"others (mode {stat.S_IMODE(mode):04o})",
                hint=f"chmod 600 {path}",
            )
    return result


# A pepper or an audit key is the secret of HMACs whose keyed fingerprints
# are stored beside the data (each API key's pepper_fingerprint, each audit
# row's audit_key): a reader of the database can test guesses of it offline,
# so it must be too long to guess.
MIN_SECRET_LENGTH = 32


_MAKE_SECRET_HINT: Final = (
    "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


def check_secret(name: str, value: str | None) -> None:
    """InvalidInput (exit 2) when ``value`` (the pepper or audit key ``name``) is set but
    short, or is no UTF-8 text (undecodable bytes in the environment): its HMACs key on
    its UTF-8 bytes."""
    if not value:
        return
    if len(value) < MIN_SECRET_LENGTH:
        raise InvalidInput(
            f"{name} is too short: at least {MIN_SECRET_LENGTH} characters (it has {len(value)})",
            hint=_MAKE_SECRET_HINT,
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name} is not valid UTF-8 text", hint=_MAKE_SECRET_HINT) from None


def _env_number(env: Mapping[str, str], key: str) -> int | float | None:
    name = _ENV_NUMBERS[key]
    text = env.get(name)
    if text is None:
        return None
    whole = _RANGES[key].what.startswith("a whole")
    try:
        value: int | float = int(text) if whole else float(text)
    except ValueError:
        value = math.nan  # reported below, with the range it must be in
    _check_number(key, value, f"{name} (environment)", repr(text))
    return value


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Resolve settings: ``flags`` (None values ignored) > ``env`` > config file > defaults."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}

    if env.get(ENV_CONFIG) == "":  # set but empty is a mistake, as for every variable
        raise InvalidInput(f"{ENV_CONFIG} is empty", hint=_NO_CONFIG_HINT)
    path = config_path(env)
    values: dict[str, Any] = dict(_read_config_file(path, named=ENV_CONFIG in env))
    if values:
        values["config_file"] = str(path)

    url_source = f"config file {path}: database_url" if "database_url" in values else None
    if ENV_DATABASE_URL in env:  # set but empty is a mistake (a missing CI secret), not "unset"
        values["database_url"] = env[ENV_DATABASE_URL]
        url_source = ENV_DATABASE_URL
    env_strings = {
        "output": env.get(ENV_OUTPUT),
        "actor": env.get(ENV_ACTOR),
        "argon2_profile": env.get(ENV_ARGON2_PROFILE),
        "audit_key": env.get(ENV_AUDIT_KEY),
        "key_pepper": env.get(ENV_KEY_PEPPER),
    }
    values.update({k: v for k, v in env_strings.items() if v})
    for key in _ENV_NUMBERS:
        number = _env_number(env, key)
        if number is not None:
            values[key] = number
    if env.get(ENV_NO_COLOR):
        values["no_color"] = True

    known = {f.name for f in fields(Settings)}
    values.update({k: v for k, v in flags.items() if k in known})
    if "database_url" in flags:
        url_source = "--database-url"
    if url_source is not None:
        values["database_url"] = resolve_database_url(values["database_url"], url_source)

    check_output_format(values.get("output", DEFAULT_OUTPUT_FORMAT))
    check_secret(ENV_KEY_PEPPER, values.get("key_pepper"))
    check_secret(ENV_AUDIT_KEY, values.get("audit_key"))
    return Settings(**values)

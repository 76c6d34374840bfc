"""Settings resolved once per process: flags > environment > config file > defaults.

Every environment variable vutf reads is named here, and nowhere else, so the
README's configuration table and this module cannot drift apart.  This module
is imported on every command, so it stays cheap: no SQLAlchemy, no Rich.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from vutf_cli.errors import InvalidInput
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
ENV_NO_COLOR = "NO_COLOR"

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
}


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


def config_path() -> Path:
    explicit = os.environ.get(ENV_CONFIG)
    if explicit:
        return Path(explicit)
    import platformdirs

    return Path(platformdirs.user_config_dir("vutf", appauthor=False)) / "config.toml"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'vutf.db'}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to print or log)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    if parts.password is None:
        return url
    user = quote(unquote(parts.username or ""), safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment."""

    database_url: str = field(default_factory=default_database_url)
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
    audit_key: str | None = None
    key_pepper: str | None = None
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


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInput(f"cannot read config file {path}: {exc.strerror}") from None
    import tomllib  # only when there is a config file to read

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"config file {path} is not valid TOML: {exc}") from None
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


def _env_number(env: Mapping[str, str], name: str, kind: type[int] | type[float]) -> Any:
    text = env.get(name)
    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {text!r}") from None
    if value <= 0:
        raise InvalidInput(f"{name} must be positive, got {text!r}")
    return value


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Resolve settings: ``flags`` (None values ignored) > ``env`` > config file > defaults."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}

    path = Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else config_path()
    values: dict[str, Any] = dict(_read_config_file(path))
    if values:
        values["config_file"] = str(path)

    env_strings = {
        "database_url": env.get(ENV_DATABASE_URL),
        "output": env.get(ENV_OUTPUT),
        "actor": env.get(ENV_ACTOR),
        "argon2_profile": env.get(ENV_ARGON2_PROFILE),
        "audit_key": env.get(ENV_AUDIT_KEY),
        "key_pepper": env.get(ENV_KEY_PEPPER),
    }
    values.update({k: v for k, v in env_strings.items() if v})
    env_numbers = {
        "db_deadline": _env_number(env, ENV_DB_DEADLINE, float),
        "connect_timeout": _env_number(env, ENV_CONNECT_TIMEOUT, float),
        "statement_timeout_ms": _env_number(env, ENV_STATEMENT_TIMEOUT, int),
        "min_password_length": _env_number(env, ENV_MIN_PASSWORD_LENGTH, int),
    }
    values.update({k: v for k, v in env_numbers.items() if v is not None})
    if env.get(ENV_NO_COLOR):
        values["no_color"] = True

    known = {f.name for f in fields(Settings)}
    values.update({k: v for k, v in flags.items() if k in known})

    check_output_format(values.get("output", DEFAULT_OUTPUT_FORMAT))
    if values.get("min_password_length", 15) < 8:
        raise InvalidInput("the minimum password length cannot be below 8")
    return Settings(**values)

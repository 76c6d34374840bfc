"""Database URLs: every form that connects is shown masked; the others are exit 2 first.

A password reaches libpq in more forms than ``user:pass@``: a ``password=``
query parameter (any case, repeated), and unencoded ``#``, ``/`` and ``?`` in
the userinfo, which SQLAlchemy's reading still accepts.  Each is masked
wherever vutf shows a URL (``db status/current/ping``, text and JSON errors,
``--debug`` tracebacks).  An unencoded ``@`` in the password would make its
tail the host name: that form is refused (exit 2) before anything connects.
docs/architecture.md §3.5; the one masker is ``vutf_cli.settings.mask_url``.

``postgres://`` is read as ``postgresql://``; an empty URL is exit 2; a
relative ``sqlite:///`` path that looks like an absolute one missing a slash
is refused with the four-slash spelling, and messages name SQLite files by
their absolute path (issue 12 item 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from tests.cli.conftest import CliResult, RunCli, invoke, run_cli  # noqa: F401 (fixture)
from vutf_cli.errors import InvalidInput
from vutf_cli.settings import mask_url, resolve_database_url, url_has_password

# Fragments only the passwords hold; none may appear in any output.
FRAGMENTS = ("Zqmk", "Xvpl", "Wkrt", "Jyds")
# The forms that connect (PostgreSQL's trust authentication ignores the password).
CONNECTING_FORMS = {
    "userinfo": "postgresql://{user}:ZqmkXvplWkrtJyds@{rest}",
    "query parameter": "postgresql://{user}@{rest}?password=ZqmkXvplWkrtJyds",
    "query parameter, repeated": (
        "postgresql://{user}@{rest}?password=Zqmk&application_name=vutf&password=XvplWkrtJyds"
    ),
    "unencoded #": "postgresql://{user}:Zqmk#XvplWkrtJyds@{rest}",
    "unencoded / and ?": "postgresql://{user}:Zqmk/Xvpl?WkrtJyds@{rest}",
    "unencoded : and encoded @": "postgresql://{user}:Zqmk:Xvpl%40WkrtJyds@{rest}",
    "postgres:// alias": "postgres://{user}:ZqmkXvplWkrtJyds@{rest}",
}
# libpq's keywords are lower case: these fail when connecting (exit 2), still masked.
FAILING_FORMS = {
    "query parameter, other case": "postgresql://{user}@{rest}?PassWord=ZqmkXvplWkrtJyds",
    "query parameter, encoded key": "postgresql://{user}@{rest}?PASS%57ORD=ZqmkXvplWkrtJyds",
}
REFUSED_FORMS = {
    "unencoded @": "postgresql://{user}:Zqmk@XvplWkrtJyds@{rest}",
    "unencoded @ and /": "postgresql://{user}:Zqmk@Xvpl/Wkrt@{rest}",
    "unencoded @ and ?": "postgresql://{user}:Zqmk@Xvpl?Wkrt@{rest}",
}
UNREACHABLE = "127.0.0.1:1/vutf_nowhere"
QUICK = {"VUTF_DB_DEADLINE": "0.1"}


def _assert_no_password(result: CliResult) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in result.stdout, result.stdout
        assert fragment not in result.stderr, result.stderr


def _unreachable(form: str) -> str:
    return form.format(user="vutf", rest=UNREACHABLE)


# -- the masker ---------------------------------------------------------------------------
# Passwords use characters no other part of the generated URL holds (Greek capitals), plus
# every character that delimits a URL part.
PASSWORD = st.text(alphabet="ΑΒΓΔΕΖΗΘ#/?@:&=%!$;,+ ", min_size=1, max_size=24)
QUERY_PASSWORD = st.text(alphabet="ΑΒΓΔΕΖΗΘ#/?@:=%!$;,", min_size=1, max_size=24)
GREEK = frozenset("ΑΒΓΔΕΖΗΘ")
HOST = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
PORT = st.integers(min_value=1, max_value=65535)


def _names_host_and_database(masked: str, host: str, port: int, database: str) -> None:
    assert GREEK.isdisjoint(masked), masked
    assert f"@{host}:{port}/{database}" in masked, masked


@settings(max_examples=150, deadline=None)
@given(user=NAME, password=PASSWORD, host=HOST, port=PORT, database=NAME)
def test_a_userinfo_password_with_any_characters_is_masked(
    user: str, password: str, host: str, port: int, database: str
) -> None:
    url = f"postgresql://{user}:{password}@{host}:{port}/{database}"
    masked = mask_url(url)
    _names_host_and_database(masked, host, port, database)
    assert masked.startswith(f"postgresql://{user}:***@")
    assert url_has_password(url)
    # Where SQLAlchemy reads what was meant, vutf accepts it; otherwise it refuses it.
    if "@" in password:
        with pytest.raises(InvalidInput) as refused:
            resolve_database_url(url, "test")
        assert GREEK.isdisjoint(refused.value.message)
        assert host in refused.value.message
        return
    accepted = make_url(resolve_database_url(url, "test"))
    assert (accepted.host, accepted.port, accepted.database) == (host, port, database)
    assert accepted.password is not None
    assert str(accepted.password) in (password, unquote(password))


@settings(max_examples=150, deadline=None)
@given(
    user=NAME,
    host=HOST,
    port=PORT,
    database=NAME,
    passwords=st.lists(
        st.tuples(
            st.sampled_from(["password", "PASSWORD", "PassWord", "sslpassword", "pass%77ord"]),
            QUERY_PASSWORD,
        ),
        min_size=1,
        max_size=3,
    ),
    before=st.booleans(),
)
def test_password_query_parameters_are_masked_in_any_case_and_number(
    user: str, host: str, port: int, database: str, passwords: list[tuple[str, str]], before: bool
) -> None:
    parameters = [f"{key}={value}" for key, value in passwords]
    parameters.insert(0 if before else len(parameters), "application_name=vutf")
    url = f"postgresql://{user}@{host}:{port}/{database}?{'&'.join(parameters)}"
    masked = mask_url(url)
    assert url_has_password(url)
    assert GREEK.isdisjoint(masked), masked
    if not any("@" in value for _, value in passwords):
        _names_host_and_database(masked, host, port, database)
        assert "application_name=vutf" in masked
    # else SQLAlchemy itself reads "user@host:" as the user name and the text up to that "@"
    # as the password: masked as such, so nothing of the value shows either.


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://vutf@db.example/vutf",
        "postgresql://vutf@db.example/vutf?sslmode=require&application_name=a",
        "sqlite:////var/lib/vutf/vutf.db",
        "sqlite:///relative.db",
        "sqlite://",
    ],
)
def test_a_url_without_a_password_is_shown_as_it_is(url: str) -> None:
    assert mask_url(url) == url
    assert not url_has_password(url)


# -- every place that shows a URL, on a server that answers -------------------------------
@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("form", list(CONNECTING_FORMS), ids=list(CONNECTING_FORMS))
def test_db_status_current_and_ping_show_every_connecting_form_masked(
    database_url: str, form: str
) -> None:
    target = make_url(database_url)
    rest = f"{target.host}:{target.port or 5432}/{target.database}"
    url = CONNECTING_FORMS[form].format(user=target.username, rest=rest)
    runs = [("status", "json"), ("current", "table"), ("ping", "json")]
    for command, output in runs:
        result = invoke(["--database-url", url, "-o", output, "db", command])
        assert result.exit_code == 0, (command, result.stderr)
        _assert_no_password(result)
        assert f"@{rest}" in result.stdout
        if output == "json":
            shown = result.json()["database"]
            assert shown.startswith("postgresql://")  # postgres:// is read as postgresql
            assert "***" in shown


# -- errors, text and JSON, with and without --debug -----------------------------------------
@pytest.mark.parametrize(
    ("form", "exit_code"),
    [*((form, 7) for form in CONNECTING_FORMS), *((form, 2) for form in FAILING_FORMS)],
    ids=[*CONNECTING_FORMS, *FAILING_FORMS],
)
@pytest.mark.parametrize(("output", "debug"), [("table", False), ("json", True)])
def test_an_error_shows_every_form_masked(
    form: str, exit_code: int, output: str, debug: bool
) -> None:
    url = _unreachable({**CONNECTING_FORMS, **FAILING_FORMS}[form])
    args = ["--database-url", url, "-o", output, *(["--debug"] * debug), "db", "ping"]
    result = invoke(args, env=QUICK)
    assert result.exit_code == exit_code, result.stderr
    _assert_no_password(result)
    message = result.error()["message"] if output == "json" else result.stderr
    assert "127.0.0.1:1/vutf_nowhere" in message


@pytest.mark.parametrize("form", list(REFUSED_FORMS), ids=list(REFUSED_FORMS))
@pytest.mark.parametrize("output", ["table", "json"])
def test_an_unencoded_at_in_the_password_is_refused_before_connecting(
    form: str, output: str
) -> None:
    url = _unreachable(REFUSED_FORMS[form])
    result = invoke(["--database-url", url, "-o", output, "--debug", "users", "list"], env=QUICK)
    assert result.exit_code == 2, result.stderr  # not 7: nothing tried to connect
    _assert_no_password(result)
    if output == "json":
        error = result.error()
        assert error["code"] == "invalid_input"
        assert "%40" in error["hint"]
    else:
        assert result.stderr.startswith("error: invalid database URL postgresql://vutf:***@")
        assert "hint: write '@' in a user name or password as %40" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("source", ["flag", "environment", "config file"])
def test_a_refused_form_names_where_it_came_from(source: str, isolated_environment: Path) -> None:
    url = _unreachable(REFUSED_FORMS["unencoded @"])
    args, env = ["users", "list"], dict(QUICK)
    if source == "flag":
        args = ["--database-url", url, *args]
    elif source == "environment":
        env["VUTF_DATABASE_URL"] = url
    else:
        config = Path(os.environ["VUTF_CONFIG"])
        config.write_text(f"database_url = {json.dumps(url)}\n")
        config.chmod(0o600)
    result = invoke(args, env=env)
    assert result.exit_code == 2, result.stderr
    _assert_no_password(result)
    expected = {"flag": "--database-url", "environment": "VUTF_DATABASE_URL",
                "config file": f"config file {os.environ['VUTF_CONFIG']}"}[source]  # fmt: skip
    assert expected in result.stderr.splitlines()[0]


# -- which database: empty, postgres://, relative SQLite paths ------------------------------
@pytest.mark.parametrize("where", ["environment", "flag", "config file"])
def test_an_empty_database_url_is_exit_2_and_touches_no_database(
    where: str, isolated_environment: Path
) -> None:
    """A CI secret that is missing must not silently mean the default database."""
    args, env = ["users", "list"], {}
    if where == "environment":
        env["VUTF_DATABASE_URL"] = ""
    elif where == "flag":
        args = ["--database-url", "", *args]
    else:
        Path(os.environ["VUTF_CONFIG"]).write_text('database_url = ""\n')
    result = invoke(args, env=env)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert "is empty" in result.stderr.splitlines()[0]
    assert not Path(os.environ["VUTF_DATA_DIR"]).exists()  # the default was not created


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgres_scheme_is_postgresql(run_cli: RunCli, database_url: str) -> None:  # noqa: F811
    alias = "postgres" + database_url.removeprefix("postgresql")
    created = run_cli("users", "create", "alice", "--email", "a@example.com",
                      "--generate-password", env={"VUTF_DATABASE_URL": alias})  # fmt: skip
    assert created.exit_code == 0, created.stderr
    listed = invoke(["--database-url", alias, "-o", "json", "users", "list"])
    assert [user["username"] for user in listed.json()] == ["alice"]


def test_a_sqlite_path_that_lost_its_leading_slash_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///tmp/x.db`` from a folder without ``tmp/`` meant ``/tmp/x.db``."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name = f"vutf-typo-{os.getpid()}-{tmp_path.name}.db"
    for command in (["users", "list"], ["db", "upgrade"]):
        result = invoke(["--database-url", f"sqlite:///tmp/{name}", *command])
        assert result.exit_code == 2, result.stderr
        first, hint = result.stderr.splitlines()
        assert f"{work}/tmp/{name}" in first  # the path it would have used, absolute
        assert f"sqlite:////tmp/{name}" in hint
    assert list(work.iterdir()) == []
    assert not Path("/tmp", name).exists()


def test_a_relative_sqlite_path_is_used_and_shown_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)  # here tmp/ exists: the relative path is meant
    monkeypatch.chdir(work)
    missing = invoke(["--database-url", "sqlite:///tmp/x.db", "users", "list"])
    assert missing.exit_code == 8, missing.stderr
    assert f"sqlite:///{work}/tmp/x.db" in missing.stderr
    upgraded = invoke(["--database-url", "sqlite:///tmp/x.db", "db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.stderr
    assert (work / "tmp" / "x.db").is_file()
    status = invoke(["--database-url", "sqlite:///tmp/x.db", "-o", "json", "db", "status"])
    assert status.exit_code == 0, status.stderr
    assert status.json()["database"] == f"sqlite:///{work}/tmp/x.db"


def test_settings_keep_secrets_out_of_their_repr() -> None:
    """A repr can reach a traceback or a log; the URL, pepper and audit key stay out."""
    from vutf_cli.settings import Settings

    shown = repr(Settings(database_url=_unreachable(CONNECTING_FORMS["userinfo"]),
                          audit_key="XvplXvplXvpl", key_pepper="WkrtWkrtWkrt"))  # fmt: skip
    assert not any(fragment in shown for fragment in FRAGMENTS), shown

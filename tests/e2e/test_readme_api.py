"""The README's Python API example is true: it type-checks and it serves (issue 13, item 5).

The ```python block that starts ``# example: wsgi_service.py`` is taken from
the README as it is (so the README cannot drift), written outside the
package, checked by ``mypy --strict`` as a consumer would check it (which
needs the ``py.typed`` marker), and run as ``python wsgi_service.py``
against a real PostgreSQL database: an API key and a login let in, anything
else is 401, and every attempt is an audit row with the client's IP and
user agent.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_store import audit_rows
from vutf_cli.store import Store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_NAME = "wsgi_service.py"
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.slow


def readme_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(# example: (\S+)\n.*?)```", readme, flags=re.DOTALL)
    examples = {name: code for code, name in blocks}
    assert EXAMPLE_NAME in examples, "README lost its Python API example"
    return examples[EXAMPLE_NAME]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    folder = tmp_path / "consumer"  # outside the package and the checkout
    folder.mkdir()
    path = folder / EXAMPLE_NAME
    path.write_text(readme_example(), encoding="utf-8")
    return path


def test_the_example_passes_mypy_strict_as_a_consumer_would_run_it(example: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", example.name],
        cwd=example.parent,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 1 source file" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def service(example: Path, database_url: str, backend: str) -> Iterator[tuple[str, dict[str, str]]]:
    if backend != "postgresql":
        pytest.skip("the README's service runs against PostgreSQL")
    with Store.from_url(database_url, actor="seed", argon2_profile="test") as store:
        # A superuser: a key carries no scope its owner lacks.
        store.create_user("alice", "alice@example.com", password=PASSWORD, is_superuser=True)
        keys = {
            "reader": store.create_key("alice", "reader", scopes=["targets:read"]).plaintext,
            "writer": store.create_key("alice", "writer", scopes=["sessions:write"]).plaintext,
        }
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VUTF_")},
        "VUTF_DATABASE_URL": database_url,
        "VUTF_ARGON2_PROFILE": "test",
        "PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, example.name],
        cwd=example.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the example never listened"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/", keys
    finally:
        process.terminate()
        process.wait(timeout=30)


def call(url: str, authorization: str | None, agent: str = "readme-test/1") -> tuple[int, object]:
    headers = {"User-Agent": agent}
    if authorization is not None:
        headers["Authorization"] = authorization
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (http, our own)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def test_the_example_service_lets_in_a_key_and_a_login_against_postgresql(
    service: tuple[str, dict[str, str]], database_url: str
) -> None:
    url, keys = service
    unauthorized = (401, {"error": "unauthorized"})
    assert call(url, f"Bearer {keys['reader']}") == (200, {"user": "alice"})
    assert call(url, f"Bearer {keys['writer']}") == unauthorized  # lacks targets:read
    assert call(url, "Bearer vutf_garbage") == unauthorized  # malformed: no query, no row
    assert call(url, basic("alice", PASSWORD)) == (200, {"user": "alice"})
    assert call(url, basic("alice", "not the password at all")) == unauthorized
    assert call(url, "Basic YQ") == unauthorized  # not base64 (padding): no attempt
    assert call(url, None) == unauthorized

    attempts = [r for r in audit_rows(database_url) if r["action"] in ("user.login", "api_key.use")]
    assert [(r["action"], r["status"]) for r in attempts] == [
        ("api_key.use", "success"),
        ("api_key.use", "failure"),
        ("user.login", "success"),
        ("user.login", "failure"),
    ]
    assert {(r["actor"], r["ip_address"], r["user_agent"]) for r in attempts} == {
        ("wsgi-example", "127.0.0.1", "readme-test/1")
    }
    assert attempts[1]["changes"]["reason"] == "missing_scope"
    assert attempts[3]["changes"]["reason"] == "wrong_password"

    # A user agent longer than the log keeps is cut there, never a 500 (review finding 1).
    long_agent = "readme-test/2 " + "x" * 400
    assert call(url, basic("alice", PASSWORD), long_agent) == (200, {"user": "alice"})
    assert call(url, f"Bearer {keys['reader']}", long_agent) == (200, {"user": "alice"})
    assert call(url, basic("alice", "wrong again"), long_agent) == unauthorized
    later = audit_rows(database_url)[-3:]
    assert [(r["action"], r["status"]) for r in later] == [
        ("user.login", "success"),
        ("api_key.use", "success"),
        ("user.login", "failure"),
    ]
    assert {r["user_agent"] for r in later} == {long_agent[:254] + "\u2026"}

"""Case ``declarative.scale``: plan and apply an identity file vs the imperative commands.

Issue 16 item 6: planning and applying a file of 10,000 users, 50 roles and
20,000 keys takes seconds, not minutes, with memory proportional to the file.
For each backend this generates that file (JSON; sizes scaled by
``--scale``): ``ROLES`` roles granting ``read`` (every other one also
``write``), ``USERS`` users each holding one of them, ``KEYS_PER_USER`` keys
per user within the scopes of its role.  Then, as whole processes of the
installed ``vutf`` (``test`` argon2 profile, as every benchmark child), on a
new database:

1. ``vutf plan -f FILE`` on the empty database (exit 10: changes pending);
2. ``vutf apply -f FILE --yes --secrets-dir DIR`` (a generated password and
   every key's secret delivered into DIR);
3. ``vutf plan -f FILE`` again (exit 0: nothing to do);
4. on another new database, ``vutf apply -f FILE --yes --no-passwords
   --secrets-dir DIR``: the users without a usable password (nothing to
   hash), only the keys' secrets delivered;

and, on a second new database, the same creations as imperative commands in
one process: one ``vutf batch`` of ``roles create`` per role, ``users create
--password-stdin`` per user (a generated password of the same length),
``users add-role USERS... ROLE`` per role and ``keys create --secret-file``
per key.  Reported per step: wall and CPU seconds (the process's own, from
``wait4``) and its peak RSS; ratios apply / imperative and plan / apply.

``python -m tests.benchmarks.declarative_scale --backend sqlite`` runs it alone
(``--users/--roles/--keys-per-user`` to resize it, ``--no-imperative`` to skip the
batch, which takes minutes at full size).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tests.benchmarks.environment import child_environment, vutf_executable

if TYPE_CHECKING:
    from tests.benchmarks.seed import DatabaseFarm, Resources
    from tests.benchmarks.settings import Settings

CASE: Final = "declarative.scale"
USERS: Final = 10_000
ROLES: Final = 50
KEYS_PER_USER: Final = 2
PASSWORD_LENGTH: Final = 24
# Exit codes each step must end with (10: ExitCode.CHANGES_PENDING).
PLAN_PENDING: Final = 10


@dataclass(frozen=True)
class Step:
    wall_s: float
    cpu_s: float
    peak_mib: float


def identity_document(users: int, roles: int, keys_per_user: int) -> dict[str, Any]:
    """The declared identity: roles, users each in one role, keys within the role's scopes."""
    role_names = [f"team-{index:03d}" for index in range(roles)]
    document: dict[str, Any] = {
        "apiVersion": "vutf/v1",
        "kind": "Identity",
        "roles": [
            {
                "name": name,
                "description": f"benchmark team {index}",
                "scopes": ["read", "write"] if index % 2 else ["read"],
            }
            for index, name in enumerate(role_names)
        ],
        "users": [],
        "apiKeys": [],
    }
    for index in range(users):
        username = f"user{index:06d}"
        role = index % roles
        document["users"].append(
            {
                "username": username,
                "email": f"{username}@example.com",
                "full_name": f"Bench User {index}",
                "roles": [{"name": role_names[role]}],
            }
        )
        for key in range(keys_per_user):
            document["apiKeys"].append(
                {
                    "owner": username,
                    "name": f"key-{key}",
                    "scopes": ["read", "write"] if role % 2 and key % 2 else ["read"],
                }
            )
    return document


def imperative_lines(document: dict[str, Any], secrets_dir: Path) -> str:
    """The same creations as ``vutf batch`` lines, in the order apply makes them."""
    lines: list[dict[str, Any]] = []
    for role in document["roles"]:
        lines.append(
            {
                "args": [
                    "roles",
                    "create",
                    role["name"],
                    "--scope",
                    ",".join(role["scopes"]),
                    "--description",
                    role["description"],
                ]
            }
        )
    members: dict[str, list[str]] = {}
    for user in document["users"]:
        args = ["users", "create", user["username"], "--email", user["email"]]
        args += ["--full-name", user["full_name"], "--password-stdin"]
        lines.append({"args": args, "stdin": secrets.token_urlsafe(PASSWORD_LENGTH)})
        for membership in user["roles"]:
            members.setdefault(membership["name"], []).append(user["username"])
    for role_name, usernames in members.items():
        lines.append({"args": ["users", "add-role", *usernames, role_name]})
    for number, key in enumerate(document["apiKeys"]):
        args = ["keys", "create", "-u", key["owner"], "-n", key["name"]]
        args += ["-s", ",".join(key["scopes"]), "--secret-file", str(secrets_dir / f"{number}.key")]
        lines.append({"args": args})
    return "".join(json.dumps(line) + "\n" for line in lines)


def run_step(
    argv: Sequence[str], env: dict[str, str], workdir: Path, expect: int, stdin: Path | None = None
) -> Step:
    """Run one process to its end: wall, its own CPU and peak RSS (``wait4``)."""
    err_path = workdir / "declarative-stderr.txt"
    with (
        open(stdin or os.devnull, "rb") as given,
        open(os.devnull, "wb") as out,
        open(err_path, "wb") as err,
    ):
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdin=given, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != expect:
        tail = err_path.read_text(encoding="utf-8", errors="replace").strip()[-1500:]
        raise RuntimeError(
            f"{CASE}: {' '.join(argv[1:3])} exited {process.returncode}, not {expect}: {tail}"
        )
    return Step(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0)


def run_backend(
    farm: DatabaseFarm,
    home: Path,
    workdir: Path,
    backend: str,
    sizes: tuple[int, int, int],
    *,
    imperative: bool = True,
) -> dict[str, Any]:
    users, roles, keys_per_user = sizes
    vutf = str(vutf_executable())
    document = identity_document(users, roles, keys_per_user)
    folder = workdir / f"declarative-{backend}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    identity = folder / "identity.json"
    identity.write_text(json.dumps(document), encoding="utf-8")
    batch_file = folder / "imperative.jsonl"
    (folder / "keys").mkdir(mode=0o700)
    batch_file.write_text(imperative_lines(document, folder / "keys"), encoding="utf-8")

    declarative = child_environment(home, database_url=farm.create(backend, "decl").url)
    plan = [vutf, "plan", "-f", str(identity)]
    apply_file = [vutf, "apply", "-f", str(identity), "--yes"]
    runs: list[tuple[str, list[str], dict[str, str], int]] = [
        ("plan_empty", plan, declarative, PLAN_PENDING),
        (
            "apply",
            [*apply_file, "--secrets-dir", str(folder / "s")],
            declarative,
            0,
        ),
        ("plan_applied", plan, declarative, 0),
        (
            "apply_no_passwords",
            [*apply_file, "--no-passwords", "--secrets-dir", str(folder / "k")],
            child_environment(home, database_url=farm.create(backend, "nopw").url),
            0,
        ),
    ]
    if imperative:
        env = child_environment(home, database_url=farm.create(backend, "imp").url)
        runs.append(("imperative", [vutf, "batch", "-f", str(batch_file)], env, 0))
    steps: dict[str, Step] = {}
    for name, argv, env, expect in runs:
        steps[name] = step = run_step(argv, env, workdir, expect)
        # As it goes: a run at full size takes minutes.
        sys.stderr.write(f"[bench] {CASE} ({backend}) {name}: {_shown(vars(step))}\n")
    result: dict[str, Any] = {
        "users": users,
        "roles": roles,
        "keys": users * keys_per_user,
        "file_mib": identity.stat().st_size / (1024.0 * 1024.0),
        "steps": {name: vars(step) for name, step in steps.items()},
    }
    if imperative:
        apply, imperative_step = steps["apply"], steps["imperative"]
        result["apply_vs_imperative_wall"] = apply.wall_s / imperative_step.wall_s
        result["apply_vs_imperative_cpu"] = apply.cpu_s / imperative_step.cpu_s
    return result


def _shown(step: dict[str, float]) -> str:
    return f"{step['wall_s']:.2f} s ({step['cpu_s']:.2f} s CPU, {step['peak_mib']:.0f} MiB)"


def lines(backend: str, result: dict[str, Any]) -> list[str]:
    steps = result["steps"]
    size = f"{result['users']} users, {result['roles']} roles, {result['keys']} keys"
    first = (
        f"{CASE} ({backend}, {size}, file {result['file_mib']:.1f} MiB): "
        f"plan (empty db) {_shown(steps['plan_empty'])}; "
        f"apply --secrets-dir {_shown(steps['apply'])}; "
        f"plan again (nothing to do) {_shown(steps['plan_applied'])}; "
        f"apply --no-passwords (keys only to the folder) {_shown(steps['apply_no_passwords'])}"
    )
    ratio = f"plan (empty) / apply {steps['plan_empty']['wall_s'] / steps['apply']['wall_s']:.3f}x"
    if "imperative" not in steps:
        return [first, f"{CASE} ({backend}): {ratio} wall (one run each)"]
    return [
        f"{first}; imperative in one `vutf batch` {_shown(steps['imperative'])}",
        f"{CASE} ({backend}): apply / imperative {result['apply_vs_imperative_wall']:.3f}x wall, "
        f"{result['apply_vs_imperative_cpu']:.3f}x CPU; {ratio} wall "
        "(one run each; processes' own CPU, a database server's is in neither)",
    ]


# -- the runner's side ----------------------------------------------------------------------
def measure(settings: Settings, resources: Resources) -> tuple[list[str], list[dict[str, Any]]]:
    """Every backend of the run, each on new databases: the report lines and the results."""
    from tests.benchmarks.seed import progress

    sizes = (
        settings.scaled(USERS, 10),
        settings.scaled(ROLES, 2),
        KEYS_PER_USER,
    )
    found: list[str] = []
    results: list[dict[str, Any]] = []
    for backend in settings.backends:
        finish = progress(f"{CASE} ({backend}): {sizes[0]} users, {sizes[1]} roles")
        result = run_backend(resources.farm, resources.home, resources.workdir, backend, sizes)
        finish()
        found.extend(lines(backend, result))
        results.append({"backend": backend, **result})
    return found, results


def main(argv: Sequence[str] | None = None) -> int:
    """Run this case alone: its own databases, dropped at the end."""

    from tests.benchmarks import seed

    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.declarative_scale")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--roles", type=int, default=ROLES)
    parser.add_argument("--keys-per-user", type=int, default=KEYS_PER_USER)
    parser.add_argument(
        "--no-imperative", action="store_true", help="skip the (slow) imperative batch"
    )
    args = parser.parse_args(argv)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    sizes = (args.users, args.roles, args.keys_per_user)
    with seed.standalone_farm("declarative") as (farm, workdir, home):
        for backend in backends:
            result = run_backend(
                farm, home, workdir, backend, sizes, imperative=not args.no_imperative
            )
            for text in lines(backend, result):
                print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 16 the way a CI pipeline meets it: the installed `vutf` in a shell script.

`vutf plan` gates on its exit code (10: changes, 0: none), the reviewed plan
file is applied with `--yes` (no terminal), the secrets land in a private
folder, and export-state feeds plan back an empty difference.
"""

from __future__ import annotations

import stat
from pathlib import Path

from tests.e2e.harness import run_script
from vutf_cli.db.database import Database

PIPELINE = """
cat > identity.yaml <<'EOF'
apiVersion: vutf/v1
kind: Identity
users:
  - username: ci-admin
    email: ci-admin@example.com
    superuser: true
apiKeys:
  - owner: ci-admin
    name: deploy
    scopes: [read, write]
EOF
status=0
vutf plan -f identity.yaml --out reviewed.plan > plan.txt || status=$?
echo "plan exit $status"
vutf apply reviewed.plan --secrets-dir secrets --yes 2> apply.err
status=0
vutf plan -f identity.yaml > /dev/null 2>&1 || status=$?
echo "second plan exit $status"
vutf export-state > state.yaml 2> /dev/null
status=0
vutf plan -f state.yaml --prune > /dev/null 2>&1 || status=$?
echo "round trip exit $status"
printf '%s' "$(cat secrets/ci-admin.deploy.key)" | vutf keys verify > /dev/null && echo "key works"
"""


def test_a_pipeline_gates_on_plan_and_applies_the_reviewed_plan(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    result = run_script(PIPELINE, database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plan exit 10",
        "second plan exit 0",
        "round trip exit 0",
        "key works",
    ]
    plan_text = (tmp_path / "plan.txt").read_text()
    assert "+ user.create user ci-admin" in plan_text
    assert "+ api_key.create api_key ci-admin/deploy" in plan_text
    assert "applied 2 change(s)" in (tmp_path / "apply.err").read_text()
    secrets = tmp_path / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert sorted(p.name for p in secrets.iterdir()) == ["ci-admin.deploy.key", "ci-admin.password"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets.iterdir())

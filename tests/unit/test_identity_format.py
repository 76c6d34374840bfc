"""The identity file format (issue 16): the shipped schema, YAML and JSON, the README example."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from vutf_cli.errors import InvalidInput
from vutf_cli.services.declarative.format import (
    DesiredMembership,
    identity_document,
    parse_identity,
    schema,
)

README = Path(__file__).resolve().parents[2] / "README.md"

YAML = b"""\
apiVersion: vutf/v1
kind: Identity
roles:
  - {name: ops, scopes: [read]}
users:
  - username: alice
    email: Alice@Example.com
    roles: [ops, {name: viewer, expires_at: 2031-01-01T00:00:00Z}]
apiKeys:
  - {owner: alice, name: ci, expires_at: null}
"""


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())


def test_yaml_and_json_declare_the_same_identity() -> None:
    from_yaml = parse_identity(YAML, "a.yaml")
    document = json.dumps(from_yaml.document, indent="\t").encode()
    from_json = parse_identity(document, "a.json")
    assert from_json == from_yaml
    (alice,) = from_yaml.users
    assert alice.email == "alice@example.com"  # normalized as the commands do
    assert alice.roles == (
        DesiredMembership("ops"),
        DesiredMembership("viewer", datetime(2031, 1, 1, tzinfo=UTC)),
    )
    (key,) = from_yaml.keys
    assert key.scopes is None  # not given: a new key gets the default
    assert "expires_at" in key.given
    assert key.expires_at is None  # given as null: never expires
    # Written back with the fields it gives, it reads as the same declaration.
    written = identity_document(from_yaml)
    assert parse_identity(json.dumps(written).encode(), "w.json") == from_yaml


def test_json_positions_count_tabs_as_one_column() -> None:
    text = b'{"apiVersion": "vutf/v1", "kind": "Identity",\n\t"users": [{"username": "al"}]}'
    with pytest.raises(InvalidInput) as caught:
        parse_identity(text, "t.json")
    # The tab is one column: the object starts at column 12 of line 2.
    assert caught.value.message.startswith("t.json:2:12: users/0:")


def test_more_problems_than_shown_are_counted() -> None:
    users = "".join(f"  - username: x{i}\n    email: nope\n" for i in range(5))
    with pytest.raises(InvalidInput) as caught:
        parse_identity(f"apiVersion: vutf/v1\nkind: Identity\nusers:\n{users}".encode(), "m.yaml")
    assert caught.value.message.endswith("(and 2 more)")


def test_the_readme_example_is_a_valid_identity_file() -> None:
    block = re.search(r"```yaml\n(apiVersion: vutf/v1.*?)```", README.read_text(), re.DOTALL)
    assert block is not None, "README lost its identity file example"
    identity = parse_identity(block.group(1).encode(), "README.md")
    assert [role.name for role in identity.roles] == ["deployers"]
    assert [user.username for user in identity.users] == ["dana", "erin"]


def test_anchors_a_file_repeats_on_purpose_are_read() -> None:
    # 500 keys sharing one scopes list: aliases expanding well within the file's size.
    keys = "".join(f"  - {{owner: alice, name: k{n}, scopes: *ci}}\n" for n in range(500))
    text = (
        "apiVersion: vutf/v1\nkind: Identity\n"
        "users:\n  - {username: alice, email: alice@example.com}\n"
        "apiKeys:\n  - {owner: alice, name: base, scopes: &ci [read, 'targets:write']}\n" + keys
    )
    identity = parse_identity(text.encode(), "keys.yaml")
    assert len(identity.keys) == 501
    assert {key.scopes for key in identity.keys} == {("read", "targets:write")}


def test_nesting_up_to_the_bound_is_read_and_one_level_more_is_refused() -> None:
    from vutf_cli.input_documents import MAX_NESTING, check_document_shape

    def nested(levels: int) -> object:
        value: object = "x"
        for _ in range(levels - 1):
            value = [value]
        return value

    check_document_shape(nested(MAX_NESTING), "ok.json")
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_NESTING} levels"):
        check_document_shape(nested(MAX_NESTING + 1), "deep.json")


def test_a_key_twice_in_one_mapping_is_refused_where_it_repeats() -> None:
    # YAML and json keep the last: the `superuser: true` a reviewer did not see.
    yaml_text = (
        b"apiVersion: vutf/v1\nkind: Identity\nusers:\n"
        b"  - username: alice\n    email: alice@example.com\n"
        b"    superuser: false\n    superuser: true\n"
    )
    with pytest.raises(InvalidInput) as refused:
        parse_identity(yaml_text, "a.yaml")
    assert refused.value.message == (
        "a.yaml:7:5: invalid YAML: the key 'superuser' appears twice in one object"
    )
    json_text = b'{"apiVersion": "vutf/v1", "kind": "Identity", "kind": "Identity"}'
    with pytest.raises(InvalidInput, match="the key 'kind' appears twice in one object"):
        parse_identity(json_text, "a.json")


def test_a_merge_key_may_repeat_what_it_merges() -> None:
    text = (
        b"apiVersion: vutf/v1\nkind: Identity\nusers:\n"
        b"  - &base {username: alice, email: alice@example.com, superuser: true}\n"
        b"  - {<<: *base, username: bob, email: bob@example.com}\n"
    )
    _, bob = parse_identity(text, "merge.yaml").users
    assert (bob.username, bob.superuser) == ("bob", True)

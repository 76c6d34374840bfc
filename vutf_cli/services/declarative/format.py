"""The declarative identity file (``apiVersion: vutf/v1``, ``kind: Identity``): reading and writing.

The file is YAML or JSON (JSON when it starts with ``{``), checked against
the JSON Schema shipped as ``vutf_cli/schemas/identity-v1.json`` (the one
description of the format; README "Declarative identity") and then against
the same value rules as the commands (usernames, emails, scopes, times).
Every problem names the file, line and column: the data is read with
PyYAML's C loader, and only when something is wrong is the document
composed again for its node marks (so a good 10,000-user file is parsed
once).  JSON is composed by the same YAML parser for the marks, with each
tab (in valid JSON only ever whitespace) read as a space, which keeps
every line and column where it was.

A field left out is not managed: an existing value is kept, a new object
gets the command's default.  Passwords and key secrets are never in the
file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from typing import Any, Final

import jsonschema
import yaml

from vutf_cli.domain import validation
from vutf_cli.errors import InvalidInput
from vutf_cli.input_documents import (
    NUMBER_TOO_LONG,
    DuplicateKey,
    JsonRefused,
    check_document_shape,
    parse_json,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "DesiredKey",
    "DesiredMembership",
    "DesiredRole",
    "DesiredUser",
    "Identity",
    "identity_document",
    "parse_identity",
    "schema",
]

API_VERSION: Final = "vutf/v1"
KIND: Final = "Identity"
SCHEMA_FILE: Final = "identity-v1.json"

# How many problems one error line lists before "and N more".
_SHOWN_PROBLEMS: Final = 3
# How many values per character of YAML its aliases may expand to (see _load_yaml).
_ALIAS_EXPANSION: Final = 10

_Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class DesiredRole:
    name: str
    scopes: tuple[str, ...]
    description: str | None = None
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class DesiredMembership:
    role: str
    expires_at: datetime | None = None  # None: until removed


@dataclass(frozen=True, slots=True)
class DesiredUser:
    username: str
    email: str
    full_name: str | None = None
    active: bool = True
    superuser: bool = False
    verified: bool = False
    # None: the user's roles are not managed; else every role they hold.
    roles: tuple[DesiredMembership, ...] | None = None
    # The optional fields the file gives (the others are not managed).
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class DesiredKey:
    owner: str
    name: str
    scopes: tuple[str, ...] | None = None  # None: not given
    expires_at: datetime | None = None
    given: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Identity:
    users: tuple[DesiredUser, ...] = ()
    keys: tuple[DesiredKey, ...] = ()
    roles: tuple[DesiredRole, ...] = ()
    # The document as read (a plan file keeps it, so what is not managed stays so).
    document: Any = field(default=None, compare=False, repr=False)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema of the format, as shipped in the package."""
    text = resources.files("vutf_cli.schemas").joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- reading -------------------------------------------------------------------------------------
def parse_identity(data: bytes, source: str) -> Identity:
    """The identity ``data`` (the bytes of the file ``source``) declares; InvalidInput if bad."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{source}: not UTF-8 text (byte {exc.start})") from None
    is_json = text.lstrip().startswith("{")
    document = _load_json(text, source) if is_json else _load_yaml(text, source)
    problems = _schema_problems(document)
    identity: Identity | None = None
    if not problems:
        identity, problems = _identity(document)
    if problems:
        raise _located(problems, text, source, is_json=is_json)
    assert identity is not None
    return identity


def _load_json(text: str, source: str) -> Any:
    try:
        document = parse_json(text)
    except JsonRefused as exc:
        raise InvalidInput(f"{source}{exc.where}: invalid JSON: {exc.reason}") from None
    check_document_shape(document, source)
    return document


class _IdentityLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml's when there is one), refusing a key twice in one mapping."""


def _mapping_of_unique_keys(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    # YAML keeps the last of repeated keys, as json does (see unique_keys).
    seen: set[tuple[str, str]] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if (key_node.tag, key_node.value) in seen:
                raise yaml.MarkedYAMLError(
                    problem=str(DuplicateKey(key_node.value)), problem_mark=key_node.start_mark
                )
            seen.add((key_node.tag, key_node.value))
    mapping: dict[Any, Any] = loader.construct_mapping(node)
    return mapping


_IdentityLoader.add_constructor("tag:yaml.org,2002:map", _mapping_of_unique_keys)


def _load_yaml(text: str, source: str) -> Any:
    try:
        document = yaml.load(text, Loader=_IdentityLoader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = "" if mark is None else f"{mark.line + 1}:{mark.column + 1}:"
        raise InvalidInput(f"{source}:{where} invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: invalid YAML: {exc}") from None
    except ValueError:  # an int the constructor cannot read
        raise InvalidInput(f"{source}: invalid YAML: {NUMBER_TOO_LONG}") from None
    # Before _plain, which copies every alias out: a few hundred bytes of nested aliases
    # would expand to billions of values.  An alias-free document has fewer values than
    # characters; the margin is for anchors a file repeats on purpose.
    check_document_shape(document, source, max_values=_ALIAS_EXPANSION * len(text) + 10_000)
    return _plain(document)


def _plain(value: Any) -> Any:
    """YAML timestamps as the ISO text they were (the schema and JSON know only strings)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _schema_problems(document: Any) -> list[tuple[_Path, str]]:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [(tuple(error.absolute_path), error.message) for error in errors]


def _identity(document: Mapping[str, Any]) -> tuple[Identity, list[tuple[_Path, str]]]:
    problems: list[tuple[_Path, str]] = []
    users: list[DesiredUser] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("users") or ()):
        where: _Path = ("users", index)
        try:
            user = _user(raw)
        except InvalidInput as exc:
            problems.append((where, exc.message))
            continue
        if validation.identity_key(user.username) in seen:
            problems.append(((*where, "username"), f"user '{user.username}' is declared twice"))
        seen.add(validation.identity_key(user.username))
        users.append(user)
    keys: list[DesiredKey] = []
    seen_keys: set[tuple[str, str]] = set()
    for index, raw in enumerate(document.get("apiKeys") or ()):
        where = ("apiKeys", index)
        try:
            key = _key(raw)
        except InvalidInput as exc:
            problems.append((where, exc.message))
            continue
        ident = (validation.identity_key(key.owner), key.name)
        if ident in seen_keys:
            problems.append(
                ((*where, "name"), f"key '{key.name}' of '{key.owner}' is declared twice")
            )
        seen_keys.add(ident)
        keys.append(key)
    roles, role_problems = _roles(document)
    problems.extend(role_problems)
    return Identity(tuple(users), tuple(keys), document=document, roles=roles), problems


def _roles(document: Mapping[str, Any]) -> tuple[tuple[DesiredRole, ...], list[tuple[_Path, str]]]:
    from vutf_cli.domain.roles import validate_role_name

    problems: list[tuple[_Path, str]] = []
    roles: list[DesiredRole] = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("roles") or ()):
        where: _Path = ("roles", index)
        try:
            role = DesiredRole(
                name=validate_role_name(raw["name"]),
                scopes=tuple(validation.normalize_scopes(raw["scopes"])),
                description=validation.validate_description(raw.get("description")),
                given=frozenset({"description"} & raw.keys()),
            )
        except InvalidInput as exc:
            problems.append((where, exc.message))
            continue
        if role.name.lower() in seen:
            problems.append(((*where, "name"), f"role '{role.name}' is declared twice"))
        seen.add(role.name.lower())
        roles.append(role)
    return tuple(roles), problems


_USER_FIELDS: Final = {"full_name", "active", "superuser", "verified"}


def _memberships(raw: Sequence[Any] | None) -> tuple[DesiredMembership, ...] | None:
    from vutf_cli.domain.roles import validate_role_name

    if raw is None:
        return None
    found: dict[str, DesiredMembership] = {}
    for item in raw:
        name, expires = (
            (item, None) if isinstance(item, str) else (item["name"], item.get("expires_at"))
        )
        membership = DesiredMembership(
            validate_role_name(name), None if expires is None else _instant(expires)
        )
        if membership.role.lower() in found:
            raise InvalidInput(f"role '{membership.role}' is listed twice")
        found[membership.role.lower()] = membership
    return tuple(found.values())


def _user(raw: Mapping[str, Any]) -> DesiredUser:
    given = frozenset(_USER_FIELDS & raw.keys())
    return DesiredUser(
        roles=_memberships(raw.get("roles")),
        username=validation.validate_username(raw["username"]),
        email=validation.normalize_email(raw["email"]),
        full_name=validation.validate_full_name(raw.get("full_name")),
        active=raw.get("active", True),
        superuser=raw.get("superuser", False),
        verified=raw.get("verified", False),
        given=given,
    )


def _key(raw: Mapping[str, Any]) -> DesiredKey:
    scopes = raw.get("scopes")
    expires = raw.get("expires_at")
    name = raw["name"].strip()
    if not name:
        raise InvalidInput("a key's name must not be blank")
    return DesiredKey(
        owner=validation.validate_username(raw["owner"]),
        name=name,
        scopes=None if scopes is None else tuple(validation.normalize_scopes(scopes)),
        expires_at=None if expires is None else _instant(expires),
        given=frozenset({"scopes", "expires_at"} & raw.keys()),
    )


def _instant(text: str) -> datetime:
    from datetime import UTC

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"expires_at {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise InvalidInput(f"expires_at {text!r} has no zone (add Z or +HH:MM)")
    return value.astimezone(UTC)


def _located(
    problems: Sequence[tuple[_Path, str]], text: str, source: str, *, is_json: bool
) -> InvalidInput:
    marks = _marks(text.replace("\t", " ") if is_json else text)
    lines = []
    for path, message in problems[:_SHOWN_PROBLEMS]:
        line, column = _position(marks, path)
        place = "/".join(map(str, path)) or "(document)"
        lines.append(f"{source}:{line}:{column}: {place}: {message}")
    more = len(problems) - _SHOWN_PROBLEMS
    error = InvalidInput("; ".join(lines) + (f" (and {more} more)" if more > 0 else ""))
    error.hint = f"the format: vutf_cli/schemas/{SCHEMA_FILE} (README: Declarative identity)"
    return error


def _marks(text: str) -> dict[_Path, tuple[int, int]]:
    """Each node's path -> (line, column), both from 1."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    found: dict[_Path, tuple[int, int]] = {}
    if root is not None:
        for path, node in _walk(root, ()):
            found[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    return found


def _walk(node: yaml.Node, path: _Path) -> Iterator[tuple[_Path, yaml.Node]]:
    yield path, node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(value, (*path, str(key.value)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index))


def _position(marks: Mapping[_Path, tuple[int, int]], path: _Path) -> tuple[int, int]:
    # The deepest node that exists (a missing field is reported at its object).
    for end in range(len(path), -1, -1):
        if path[:end] in marks:
            return marks[path[:end]]
    return 1, 1


# -- writing -------------------------------------------------------------------------------------
def identity_document(identity: Identity) -> dict[str, Any]:
    """``identity`` as a document of the format: the fields it gives (export-state gives all)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "roles": [
            {
                "name": role.name,
                **_given(role.given, {"description": role.description}),
                "scopes": list(role.scopes),
            }
            for role in identity.roles
        ],
        "users": [
            {
                "username": user.username,
                "email": user.email,
                **_given(
                    user.given,
                    {
                        "full_name": user.full_name,
                        "active": user.active,
                        "superuser": user.superuser,
                        "verified": user.verified,
                    },
                ),
                **({} if user.roles is None else {"roles": _membership_items(user.roles)}),
            }
            for user in identity.users
        ],
        "apiKeys": [
            {
                "owner": key.owner,
                "name": key.name,
                **({} if key.scopes is None else {"scopes": list(key.scopes)}),
                **_given(
                    key.given,
                    {"expires_at": None if key.expires_at is None else _iso(key.expires_at)},
                ),
            }
            for key in identity.keys
        ],
    }


def _given(given: frozenset[str], values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name in given}


def _membership_items(roles: Sequence[DesiredMembership]) -> list[Any]:
    return [
        m.role if m.expires_at is None else {"name": m.role, "expires_at": _iso(m.expires_at)}
        for m in roles
    ]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")

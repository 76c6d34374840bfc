"""BaseRepository: typed CRUD, filtering, soft delete and keyset pagination over one model.

A repository receives a Session from the unit of work and only ever flushes;
it never commits, closes a session or builds an engine.  Everything a caller
names (a filter, an ordering, a relationship to load) is checked against the
model and refused with InvalidInput when unknown, never silently ignored.

Soft-deleted rows (models with ``is_deleted``) are invisible unless asked for.
The "live" condition is written ``NOT <table>.is_deleted`` on both dialects,
literally the predicate of the partial unique indexes, so SQLite's planner
(which matches index predicates syntactically) can use them too.

Listing is by keyset pages: ``keyset()`` takes an opaque cursor holding the
last row's (order value, primary key); the next page is everything strictly
after it in (order, pk) order, so no row is skipped or repeated even when
many rows share an order value or rows are inserted meanwhile.  NULL order
values sort last ascending (first descending) on both dialects.
``keyset_rows()`` pages the same way but returns plain result rows, for
read-only listings.

Model introspection reads what a mapper knows from its declaration (its
columns and primary key), so building a query does not configure every
mapper of the registry; only loading ORM objects does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Final, Generic, TypeVar, cast

from sqlalchemy import (
    Boolean,
    Integer,
    Row,
    Select,
    and_,
    func,
    literal,
    not_,
    or_,
    select,
    tuple_,
    type_coerce,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, Session, selectinload
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql.base import ExecutableOption
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.schema import Column, Table

from vutf_cli.db.base import Base
from vutf_cli.db.repositories.cursor import decode_cursor, encode_cursor, type_tag
from vutf_cli.db.types import GUID, utcnow
from vutf_cli.db.uow import DEFERRED_FLUSH
from vutf_cli.errors import Conflict, InvalidInput, NotFound, StaleVersion

__all__ = ["BaseRepository", "KeysetPage"]

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=Base)
StatementT = TypeVar("StatementT", bound=Select[Any])

# Set at creation, never changed by update().
IMMUTABLE_COLUMNS: Final = frozenset({"id", "created_at", "created_by", "version"})

_STALE_MESSAGE: Final = "the record was changed by someone else meanwhile; nothing was written"
_STALE_HINT: Final = "re-read it and try again"


@dataclass(frozen=True)
class KeysetPage(Generic[T]):
    """One keyset page; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def _words(class_name: str) -> str:
    """``ApiKey`` -> ``api key``: the model's name as people read it."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", class_name).lower()


@cache
def _mapper_of(model: type[Base]) -> Mapper[Any]:
    mapper: Mapper[Any] = sa_inspect(model)
    return mapper


class BaseRepository(Generic[ModelT]):
    """CRUD and queries for ``model``; subclasses set ``model`` (and may set ``label``)."""

    model: ClassVar[type[Base]]
    # How the model is named in messages ("user 1234... not found").
    label: ClassVar[str | None] = None

    def __init__(self, session: Session, *, actor: str | None = None) -> None:
        self.session = session
        self.actor = actor

    # -- model introspection --------------------------------------------------
    @property
    def _mapper(self) -> Mapper[Any]:
        return _mapper_of(self.model)

    @property
    def _name(self) -> str:
        return self.label or _words(self.model.__name__)

    def _has_column(self, name: str) -> bool:
        # mapper.columns (attribute name -> Column), unlike mapper.column_attrs,
        # is there without configuring the mappers.
        return name in self._mapper.columns

    @property
    def _soft_deletes(self) -> bool:
        return self._has_column("is_deleted")

    def _column(self, name: str) -> Any:
        """The mapped attribute ``model.<name>`` of a column; InvalidInput if there is none.

        Typed ``Any`` because it is used both as a SQL expression and, by
        subclasses, for attribute names such as ``meta``.
        """
        if not isinstance(name, str) or name not in self._mapper.columns:
            known = ", ".join(sorted(self._mapper.columns.keys()))
            raise InvalidInput(f"unknown field {name!r} for {self._name}; known fields: {known}")
        return getattr(self.model, name)

    def _table_column(self, name: str) -> Column[Any]:
        """The schema Column behind attribute ``name`` (type, nullability)."""
        self._column(name)
        return self._mapper.columns[name]

    @property
    def _table(self) -> Table:
        return cast(Table, self._mapper.local_table)

    @property
    def _pk_name(self) -> str:
        primary_key = self._mapper.primary_key
        if len(primary_key) != 1:
            raise TypeError(f"{self.model.__name__} must have a single-column primary key")
        return self._mapper.get_property_by_column(primary_key[0]).key

    def _check_columns(self, values: Mapping[str, Any]) -> None:
        for name in values:
            self._column(name)

    def _coerce_id(self, id: uuid.UUID | str) -> Any:
        if isinstance(id, str) and isinstance(self._table_column(self._pk_name).type, GUID):
            try:
                return uuid.UUID(id)
            except ValueError:
                raise InvalidInput(f"invalid {self._name} id {id!r}: expected a UUID") from None
        return id

    # -- statement building (protected: subclasses use these) ----------------
    def _live_condition(self) -> ColumnElement[bool]:
        """``NOT <table>.is_deleted``: the exact predicate of the partial indexes.

        SQLAlchemy would render ``is_deleted = 0`` on SQLite, which SQLite's
        planner does not match against an index's ``WHERE NOT is_deleted``;
        coercing to Integer for the negation keeps the ``NOT column`` form.
        """
        negated = not_(type_coerce(self._column("is_deleted"), Integer))
        return cast(ColumnElement[bool], type_coerce(negated, Boolean))

    def _select(self, include_deleted: bool = False, *, rows: bool = False) -> Select[Any]:
        """``SELECT model`` (``rows``: every column of its table), without
        soft-deleted rows unless ``include_deleted``."""
        statement = select(self._table) if rows else select(self.model)
        if self._soft_deletes and not include_deleted:
            statement = statement.where(self._live_condition())
        return statement

    def _filter_condition(self, name: str, value: Any) -> ColumnElement[bool]:
        column = self._column(name)
        if value is None:
            return cast(ColumnElement[bool], column.is_(None))
        if isinstance(value, Collection) and not isinstance(value, str | bytes | Mapping):
            present = [item for item in value if item is not None]
            condition = cast(ColumnElement[bool], column.in_(present))
            if len(present) != len(value):
                # SQL's IN never matches NULL; a None in the list means IS NULL.
                condition = or_(condition, column.is_(None))
            return condition
        return cast(ColumnElement[bool], column == value)

    def _filter_conditions(self, filters: Mapping[str, Any] | None) -> list[ColumnElement[bool]]:
        return [self._filter_condition(name, value) for name, value in (filters or {}).items()]

    def _apply_filters(self, stmt: StatementT, filters: Mapping[str, Any] | None) -> StatementT:
        """``stmt`` narrowed by ``filters`` (column -> value; sequence -> IN; None -> IS NULL)."""
        conditions = self._filter_conditions(filters)
        return stmt.where(*conditions) if conditions else stmt

    def _includes_deleted(self, include_deleted: bool, filters: Mapping[str, Any] | None) -> bool:
        # Filtering on is_deleted explicitly is a request for those rows.
        return include_deleted or "is_deleted" in (filters or {})

    def _load_options(self, load: Sequence[str] | str) -> list[ExecutableOption]:
        names = (load,) if isinstance(load, str) else load
        relationships = self._mapper.relationships
        options: list[ExecutableOption] = []
        for name in names:
            if name not in relationships:
                known = ", ".join(sorted(relationships.keys())) or "none"
                raise InvalidInput(
                    f"unknown relationship {name!r} for {self._name}; known: {known}"
                )
            options.append(selectinload(getattr(self.model, name)))
        return options

    def _query(
        self,
        *,
        filters: Mapping[str, Any] | None,
        include_deleted: bool,
        where: Sequence[ColumnElement[bool]],
        rows: bool = False,
    ) -> Select[Any]:
        statement = self._select(self._includes_deleted(include_deleted, filters), rows=rows)
        statement = self._apply_filters(statement, filters)
        if where:
            statement = statement.where(*where)
        return statement

    # -- create / read / update / delete --------------------------------------
    def create(self, **values: Any) -> ModelT:
        """Insert a row (flushed, so defaults and the id are set and constraints checked;
        inside :meth:`UnitOfWork.flushing_once` only the id is set, the flush comes later)."""
        self._check_columns(values)
        if self.actor is not None:
            for name in ("created_by", "updated_by"):
                if self._has_column(name):
                    values.setdefault(name, self.actor)
        obj = cast(ModelT, self.model(**values))
        self.session.add(obj)
        if self.session.info.get(DEFERRED_FLUSH):
            # Inside UnitOfWork.flushing_once: the id now (audit rows name it), the insert later.
            pk = self._pk_name
            if getattr(obj, pk) is None and isinstance(self._table_column(pk).type, GUID):
                setattr(obj, pk, uuid.uuid4())
        else:
            self.session.flush()
        return obj

    def get(
        self,
        id: uuid.UUID | str,
        *,
        include_deleted: bool = False,
        load: Sequence[str] = (),
    ) -> ModelT | None:
        """The row with primary key ``id``, or None (also None when soft-deleted)."""
        options = self._load_options(load)
        statement = self._select(include_deleted).where(
            self._column(self._pk_name) == self._coerce_id(id)
        )
        if options:
            statement = statement.options(*options)
        return cast(ModelT | None, self.session.scalars(statement).one_or_none())

    def get_or_raise(
        self,
        id: uuid.UUID | str,
        *,
        include_deleted: bool = False,
        load: Sequence[str] = (),
    ) -> ModelT:
        obj = self.get(id, include_deleted=include_deleted, load=load)
        if obj is None:
            raise NotFound(f"{self._name} {id} not found")
        return obj

    def _flush(self) -> None:
        """Flush, turning a failed optimistic-lock check into StaleVersion."""
        try:
            self.session.flush()
        except StaleDataError as exc:
            raise StaleVersion(_STALE_MESSAGE, hint=_STALE_HINT) from exc

    def update(self, obj: ModelT, *, expected_version: int | None = None, **values: Any) -> ModelT:
        """Change columns of ``obj`` and flush.

        The UPDATE carries ``WHERE version = <version when loaded>``
        (``version_id_col``), so a row changed meanwhile by another
        transaction raises StaleVersion instead of being overwritten.
        ``expected_version`` additionally pins the version the caller saw.
        """
        self._check_columns(values)
        immutable = sorted(IMMUTABLE_COLUMNS.intersection(values))
        if immutable:
            raise InvalidInput(f"{', '.join(immutable)} of a {self._name} cannot be changed")
        if expected_version is not None and getattr(obj, "version", None) != expected_version:
            raise StaleVersion(
                f"{self._name} is at version {getattr(obj, 'version', None)}, "
                f"not {expected_version}; nothing was written",
                hint=_STALE_HINT,
            )
        for name, value in values.items():
            setattr(obj, name, value)
        if self.actor is not None and self._has_column("updated_by") and values:
            obj.updated_by = self.actor  # type: ignore[attr-defined]
        self._flush()
        return obj

    def delete(self, obj: ModelT, *, hard: bool = False) -> None:
        """Soft-delete (models with ``is_deleted``) or, with ``hard``, DELETE the row.

        Soft-deleting a row that is already deleted is a Conflict.
        """
        if hard or not self._soft_deletes:
            self.session.delete(obj)
            self._flush()
            return
        if getattr(obj, "is_deleted", False):
            raise Conflict(f"{self._name} {self._identity(obj)} is already deleted")
        changes: dict[str, Any] = {"is_deleted": True, "deleted_at": utcnow()}
        if self._has_column("deleted_by"):
            changes["deleted_by"] = self.actor
        self._set_and_flush(obj, changes)

    def restore(self, obj: ModelT) -> ModelT:
        """Undo a soft delete; Conflict if ``obj`` is not deleted."""
        if not self._soft_deletes:
            raise InvalidInput(f"a {self._name} cannot be soft-deleted, so not restored either")
        if not getattr(obj, "is_deleted", False):
            raise Conflict(f"{self._name} {self._identity(obj)} is not deleted")
        changes: dict[str, Any] = {"is_deleted": False, "deleted_at": None}
        if self._has_column("deleted_by"):
            changes["deleted_by"] = None
        self._set_and_flush(obj, changes)
        return obj

    def _set_and_flush(self, obj: ModelT, changes: Mapping[str, Any]) -> None:
        for name, value in changes.items():
            setattr(obj, name, value)
        if self.actor is not None and self._has_column("updated_by"):
            obj.updated_by = self.actor  # type: ignore[attr-defined]
        self._flush()

    def _identity(self, obj: ModelT) -> Any:
        return getattr(obj, self._pk_name)

    # -- counting and existence ---------------------------------------------
    def exists(
        self,
        *,
        include_deleted: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
        **filters: Any,
    ) -> bool:
        """Whether a row matches ``filters`` (live rows only unless asked otherwise)."""
        statement = self._query(filters=filters, include_deleted=include_deleted, where=where)
        probe = select(literal(1)).where(statement.exists())
        return self.session.execute(probe).first() is not None

    def count(
        self,
        *,
        include_deleted: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
        **filters: Any,
    ) -> int:
        statement = self._query(filters=filters, include_deleted=include_deleted, where=where)
        total = self.session.execute(
            select(func.count()).select_from(statement.order_by(None).subquery())
        ).scalar_one()
        return int(total)

    # -- listing ---------------------------------------------------------------
    def keyset(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        order_by: str = "created_at",
        descending: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        include_deleted: bool = False,
        load: Sequence[str] = (),
        where: Sequence[ColumnElement[bool]] = (),
    ) -> KeysetPage[ModelT]:
        """The ``limit`` rows after ``cursor`` in (``order_by``, primary key) order."""
        statement = self._keyset_statement(
            filters=filters,
            order_by=order_by,
            descending=descending,
            cursor=cursor,
            limit=limit,
            include_deleted=include_deleted,
            where=where,
            rows=False,
        )
        options = self._load_options(load)
        if options:
            statement = statement.options(*options)
        found = cast(list[ModelT], list(self.session.scalars(statement)))
        return self._keyset_page(found, order_by, descending, limit, getattr)

    def keyset_rows(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        order_by: str = "created_at",
        descending: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        include_deleted: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> KeysetPage[Row[Any]]:
        """:meth:`keyset` as plain result rows: every column of the table, by column name.

        Same order, cursors and checks (one statement builder), for reads
        that only copy values out: no ORM object is built and no mapper
        configured.
        """
        statement = self._keyset_statement(
            filters=filters,
            order_by=order_by,
            descending=descending,
            cursor=cursor,
            limit=limit,
            include_deleted=include_deleted,
            where=where,
            rows=True,
        )
        found = list(self.session.execute(statement))

        def value(row: Row[Any], name: str) -> Any:
            return row._mapping[self._table_column(name)]

        return self._keyset_page(found, order_by, descending, limit, value)

    def _keyset_statement(
        self,
        *,
        filters: Mapping[str, Any] | None,
        order_by: str,
        descending: bool,
        cursor: str | None,
        limit: int,
        include_deleted: bool,
        where: Sequence[ColumnElement[bool]],
        rows: bool,
    ) -> Select[Any]:
        """The query of one keyset page: ``limit + 1`` rows, to tell whether more follow."""
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1 (got {limit})")
        column = self._column(order_by)
        table_column = self._table_column(order_by)
        tag = type_tag(table_column.type)
        if tag is None:
            raise InvalidInput(f"cannot page {self._name} rows by {order_by!r}")
        nullable = bool(table_column.nullable) and order_by != self._pk_name
        pk_name = self._pk_name
        pk = self._column(pk_name)

        statement = self._query(
            filters=filters, include_deleted=include_deleted, where=where, rows=rows
        )
        if cursor is not None:
            value, last_pk = decode_cursor(
                cursor,
                order_by=order_by,
                descending=descending,
                tag=tag,
                nullable=nullable,
                pk_tag=type_tag(self._table_column(pk_name).type) or "",
            )
            statement = statement.where(
                self._after(column, pk, value, last_pk, descending=descending, nullable=nullable)
            )
        if order_by == pk_name:
            order = [pk.desc() if descending else pk.asc()]
        elif descending:
            order = [column.desc().nulls_first() if nullable else column.desc(), pk.desc()]
        else:
            order = [column.asc().nulls_last() if nullable else column.asc(), pk.asc()]
        return statement.order_by(*order).limit(limit + 1)

    def _keyset_page(
        self,
        found: list[T],
        order_by: str,
        descending: bool,
        limit: int,
        value: Callable[[T, str], Any],
    ) -> KeysetPage[T]:
        """The first ``limit`` of ``found``, and the cursor after them if there were more."""
        items = found[:limit]
        next_cursor = None
        if len(found) > limit:
            last = items[-1]
            next_cursor = encode_cursor(
                order_by, descending, value(last, order_by), value(last, self._pk_name)
            )
        return KeysetPage(items=items, next_cursor=next_cursor)

    @staticmethod
    def _after(
        column: Any,
        pk: Any,
        value: Any,
        last_pk: Any,
        *,
        descending: bool,
        nullable: bool,
    ) -> ColumnElement[bool]:
        """Rows strictly after (value, last_pk) in the keyset order.

        A row-value comparison, ``(col, pk) > (:v, :pk)``, which both dialects
        evaluate and PostgreSQL can answer from a (col, pk) index.  NULLs sit
        after every value ascending and before every value descending.
        """
        if column is pk:
            return cast(ColumnElement[bool], pk < last_pk if descending else pk > last_pk)
        typed_value = literal(value, column.type)
        typed_pk = literal(last_pk, pk.type)
        if value is None:
            if descending:
                # Among NULLs by pk descending, then every non-NULL value.
                return or_(and_(column.is_(None), pk < typed_pk), column.is_not(None))
            return and_(column.is_(None), pk > typed_pk)
        if descending:
            return tuple_(column, pk) < tuple_(typed_value, typed_pk)
        after = tuple_(column, pk) > tuple_(typed_value, typed_pk)
        return or_(after, column.is_(None)) if nullable else after

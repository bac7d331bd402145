"""Plain SQL for the edit hot path: its two reads, and INSERT and UPDATE for what it writes.

`Model.objects.create()` and `Model.save()` build their SQL anew on every call; for the few rows
an edit writes (its event, its idempotency record, the trip) that cost more CPU than the
database itself: about 0.25 ms per statement here, in the thread that shares the GIL with the
fan-out (docs/performance.md). These write the same columns with the same per-backend
adaptation (each field's `get_db_prep_save`), from SQL built once per model and column set. No
signals are sent (none are connected to these models), and no row is read back. The two reads
(the trip's row lock with the editor's role, and the first answer to an `update_id`) are built
once per backend for the same reason, and read values back as the ORM would.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.db import connection
from django.db.models import Field, JSONField, Model, UUIDField
from django.utils import timezone

from collaboration.models import ClientMutation, Trip, TripMember


@functools.cache
def _columns(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(_column_field(model, name) for name in names)


def _column_field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    # get_field() also finds reverse relations, which have no column: callers never name one.
    assert isinstance(field, Field), f"{model.__name__}.{name} is not a column"
    return field


def _quoted_column(field: Field) -> str:
    # None only for a field without a column of its own (many-to-many): callers never name one.
    assert field.column is not None, f"{field} has no column"
    return connection.ops.quote_name(field.column)


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(_quoted_column(f) for f in _columns(model, names))
    marks = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...], vendor: str) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{_quoted_column(f)} = %s" for f in _columns(model, names))
    pk = _quoted_column(model._meta.pk)
    return f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {pk} = %s"


@functools.cache
def _saved_fields(model: type[Model]) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields if not f.primary_key)


def insert(model: type[Model], **values: Any) -> None:
    """One row; `values` by field name or attname (`trip_id`), every column without a database
    default given (auto_now_add fields too: pass them)."""
    names = tuple(values)
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(_columns(model, names), values.values(), strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, names, connection.vendor), params)


def save(instance: Model) -> None:
    """`instance.save()` for an existing row: every concrete column, auto_now ones set now."""
    model = type(instance)
    names = _saved_fields(model)
    now = None
    for field in _columns(model, names):
        if getattr(field, "auto_now", False):
            now = now or timezone.now()
            setattr(instance, field.attname, now)
    params = [
        field.get_db_prep_save(getattr(instance, field.attname), connection)
        for field in _columns(model, names)
    ]
    params.append(instance.pk)
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(model, names, connection.vendor), params)


def trip_for_edit(trip_id: int, user_id: int) -> Trip | None:
    """The trip, locked FOR UPDATE where the backend can, with `actor_role`: the user's role on it
    (None for a non-member). One statement: the ORM took 0.85 ms of CPU to build this query with
    a Subquery, the plain SQL 0.1 ms. None when there is no such trip."""
    found = list(Trip.objects.raw(_trip_for_edit_sql(connection.vendor), [user_id, trip_id]))
    return found[0] if found else None


@functools.cache
def _trip_for_edit_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    trips, members = quote(Trip._meta.db_table), quote(TripMember._meta.db_table)
    sql = (
        f"SELECT t.*, (SELECT m.{quote('role')} FROM {members} m"
        f" WHERE m.{quote('trip_id')} = t.{quote('id')} AND m.{quote('user_id')} = %s)"
        f" AS actor_role FROM {trips} t WHERE t.{quote('id')} = %s"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql


def client_mutation(
    trip_id: int, actor_id: int, update_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stored request and result of the actor's mutation `update_id` on the trip, or None.
    One indexed read on every edit: plain SQL, a third of the ORM's CPU here."""
    update_id_field, request_field, result_field = _mutation_fields()
    with connection.cursor() as cursor:
        cursor.execute(
            _client_mutation_sql(connection.vendor),
            [trip_id, actor_id, update_id_field.get_db_prep_value(update_id, connection)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    # The column's expression, as the ORM passes it to the converters of a plain SELECT.
    return (
        request_field.from_db_value(row[0], request_field.cached_col, connection),
        result_field.from_db_value(row[1], result_field.cached_col, connection),
    )


@functools.cache
def _mutation_fields() -> tuple[UUIDField, JSONField, JSONField]:
    meta = ClientMutation._meta
    return meta.get_field("update_id"), meta.get_field("request"), meta.get_field("result")


@functools.cache
def _client_mutation_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = {f.name: _quoted_column(f) for f in ClientMutation._meta.concrete_fields}
    return (
        f"SELECT {columns['request']}, {columns['result']}"
        f" FROM {quote(ClientMutation._meta.db_table)}"
        f" WHERE {columns['trip']} = %s AND {columns['actor']} = %s"
        f" AND {columns['update_id']} = %s"
    )

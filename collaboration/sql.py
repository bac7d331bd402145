"""Plain INSERT and UPDATE statements for the edit hot path.

`Model.objects.create()` and `Model.save()` build their SQL anew on every call; for the few rows
an edit writes (its event, its idempotency record, the trip) that cost more CPU than the
database itself: about 0.25 ms per statement here, in the thread that shares the GIL with the
fan-out (docs/performance.md). These write the same columns with the same per-backend
adaptation (each field's `get_db_prep_save`), from SQL built once per model and column set. No
signals are sent (none are connected to these models), and no row is read back.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone


@functools.cache
def _columns(model: type[Model], names: tuple[str, ...]) -> tuple[Field, ...]:
    return tuple(model._meta.get_field(name) for name in names)


@functools.cache
def _insert_sql(model: type[Model], names: tuple[str, ...], vendor: str) -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _columns(model, names))
    marks = ", ".join(["%s"] * len(names))
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...], vendor: str) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in _columns(model, names))
    pk = quote(model._meta.pk.column)
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

"""The editable trip fields: validation of wire values and their canonical wire form."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from collaboration.errors import InvalidChange

EDITABLE_FIELDS = ("name", "destination", "start_date", "end_date", "budget", "currency", "notes")
_MAX_LENGTH = {"name": 200, "destination": 200, "notes": 10_000}
# Free text whose stale changes are merged three-way with the changes since their base instead
# of becoming conflicts (services.merges). Not the one-line labels `name` and `destination`: two
# rewrites of a label merged together read as neither (docs/decisions.md).
MERGEABLE_FIELDS = ("notes",)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_BUDGET_MAX = Decimal("9999999999.99")


def _invalid(field: str, message: str) -> InvalidChange:
    return InvalidChange(f"{field}: {message}", field=field)


def check_storable_text(field: str, value: str) -> None:
    """Refuse what a database cannot store (PostgreSQL refuses NUL in text and jsonb) or
    UTF-8 cannot encode (a lone surrogate such as JSON's "\\ud800"): the field's validation
    error, never a database error."""
    if "\x00" in value:
        raise _invalid(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(field, "must be valid Unicode text (a lone surrogate is not)") from None


def clean(field: str, value: Any) -> Any:
    """The Python value for a wire value, or InvalidChange naming the field."""
    if field not in EDITABLE_FIELDS:
        raise _invalid(field, f"not an editable field (editable: {', '.join(EDITABLE_FIELDS)})")
    if field in _MAX_LENGTH:
        if not isinstance(value, str):
            raise _invalid(field, "must be a string")
        check_storable_text(field, value)
        value = value.strip() if field != "notes" else value
        if field == "name" and not value:
            raise _invalid(field, "must not be empty")
        if len(value) > _MAX_LENGTH[field]:
            raise _invalid(field, f"must be at most {_MAX_LENGTH[field]} characters")
        return value
    if field in ("start_date", "end_date"):
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid(field, "must be a date string YYYY-MM-DD or null")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise _invalid(field, "must be a date string YYYY-MM-DD or null") from None
    if field == "budget":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _invalid(field, "must be a number or a decimal string")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise _invalid(field, "must be a number or a decimal string") from None
        if not amount.is_finite():
            raise _invalid(field, "must be a finite number")
        if amount < 0:
            raise _invalid(field, "must not be negative")
        if amount > _BUDGET_MAX:
            raise _invalid(field, f"must be at most {_BUDGET_MAX}")
        if amount != amount.quantize(Decimal("0.01")):
            raise _invalid(field, "must have at most 2 decimal places")
        return amount.quantize(Decimal("0.01"))
    if field == "currency":
        if not isinstance(value, str) or not _CURRENCY.match(value):
            raise _invalid(field, "must be a 3-letter ISO 4217 code in capitals, e.g. EUR")
        return value
    raise AssertionError(field)  # pragma: no cover - EDITABLE_FIELDS is exhaustive


def to_wire(field: str, value: Any) -> Any:
    """Dates as YYYY-MM-DD, budgets as decimal strings without needless zeros ("3500",
    "3500.50"), everything else as is."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(value.quantize(Decimal("1")))
        return str(value.quantize(Decimal("0.01")))
    return value


def check_dates_in_order(start: dt.date | None, end: dt.date | None, field: str) -> None:
    if start is not None and end is not None and end < start:
        raise _invalid(field, "end_date must not be before start_date")

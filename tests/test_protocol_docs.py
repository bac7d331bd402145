"""docs/protocol.md's "Server messages" and "Objects" tables against protocol's schemas: every
type documented for the connection types that send it, every field in both or in neither; and its
"Close codes" table against protocol.CloseCode."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

import protocol
from protocol import CloseCode, ConnectionType

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
ENVELOPE = {"id", "type", "timestamp"}  # documented once, in "Envelope"

# "## ..." sections with a "### Server messages" table, and who sends what they list.
SECTIONS: dict[str, ConnectionType | None] = {
    "Messages every connection type accepts": None,
    "Trip collaboration: `/ws/trips/<trip_id>/`": ConnectionType.TRIP_COLLABORATION,
    "Chat: `/ws/chat/<trip_id>/`": ConnectionType.CHAT,
    "Notifications: `/ws/notifications/`": ConnectionType.NOTIFICATIONS,
    "Agent status: `/ws/agent-status/`": ConnectionType.AGENT_STATUS,
}

Fields = dict[str, set[str] | None]  # field -> the nested fields listed with it (`by {id, ...}`)


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def table_after(heading: str, body: str) -> list[list[str]]:
    """The rows (cells, stripped) of the first table after `heading` in `body`."""
    start = body.index(heading)
    rows = []
    for line in body[start:].splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not set("".join(cells)) <= set("- "):  # the header's rule
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def parse_fields(cell: str) -> Fields:
    """ "`seq`, `by {id, username}`, `editing [{user, field}]` (prose)" -> the fields, with the
    nested ones; anything in parentheses is prose."""
    while re.search(r"\([^()]*\)", cell):
        cell = re.sub(r"\([^()]*\)", "", cell)
    found: Fields = {}
    for span in re.findall(r"`([^`]*)`", cell):
        match = re.fullmatch(r"(\w+)(?:\s*\[?\{([^}]*)\}\]?)?", span.strip())
        assert match, f"cannot read the field {span!r} in docs/protocol.md"
        nested = match[2]
        found[match[1]] = {n.strip() for n in nested.split(",")} if nested is not None else None
    return found


def object_schema(annotation: object) -> type[BaseModel] | None:
    """The object schema inside `UserRef`, `list[Collaborator]`, `Conflict | None`, ..."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = object_schema(arg)
        if found is not None:
            return found
    return None


def mismatches(where: str, model: type[BaseModel], documented: Fields, skip: set[str]) -> list[str]:
    expected = set(model.model_fields) - skip
    problems = []
    if set(documented) != expected:
        problems.append(
            f"{where}: documented but not in {model.__name__}: "
            f"{sorted(set(documented) - expected)}; in {model.__name__} but not documented: "
            f"{sorted(expected - set(documented))}"
        )
    for name, nested in documented.items():
        if nested is None or name not in model.model_fields:
            continue
        inner = object_schema(model.model_fields[name].annotation)
        if inner is None or set(inner.model_fields) != nested:
            problems.append(
                f"{where}: `{name}` is documented with {sorted(nested)}, the schema has "
                f"{sorted(inner.model_fields) if inner else 'no object'}"
            )
    return problems


def documented_messages() -> dict[ConnectionType | None, dict[str, Fields]]:
    found = {}
    doc = sections(DOC.read_text())
    for title, kind in SECTIONS.items():
        assert title in doc, f"docs/protocol.md has no section `## {title}`"
        rows = table_after("### Server messages", doc[title])
        by_type = {}
        for row in rows:
            [type_name] = re.findall(r"`([^`]+)`", row[0])
            assert type_name not in by_type, f"{title}: `{type_name}` is listed twice"
            by_type[type_name] = parse_fields(row[1])
        found[kind] = by_type
    return found


def test_every_server_message_is_documented_with_exactly_its_fields():
    documented = documented_messages()
    expected = {None: protocol.COMMON_SERVER_MESSAGES, **protocol.SERVER_MESSAGES}
    problems = []
    for kind, models in expected.items():
        where = kind or "every connection type"
        by_type = {model.type_name: model for model in models}
        if set(documented[kind]) != set(by_type):
            problems.append(
                f"{where}: documented {sorted(documented[kind])}, sent {sorted(by_type)}"
            )
        for type_name, model in by_type.items():
            if type_name in documented[kind]:
                problems += mismatches(
                    f"{where} `{type_name}`", model, documented[kind][type_name], ENVELOPE
                )
    assert problems == []


def _object_schemas() -> set[type[BaseModel]]:
    found, todo = set(), [protocol.WireObject]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if not issubclass(sub, protocol.ServerMessage):  # trip.snapshot is a message
                found.add(sub)
    return found


def test_every_object_is_documented_with_exactly_its_fields():
    rows = table_after("| object | schema | fields |", sections(DOC.read_text())["Objects"])
    problems, seen = [], set()
    for _, schema_cell, fields_cell in rows:
        [name] = re.findall(r"`(\w+)`", schema_cell)
        model = getattr(protocol, name)
        seen.add(model)
        problems += mismatches(f"object {name}", model, parse_fields(fields_cell), set())
    assert problems == []
    assert seen == _object_schemas()


def test_every_close_code_is_documented():
    close_codes = sections(DOC.read_text())["Close codes"]
    rows = table_after("| code | meaning | client should |", close_codes)
    documented = [int(row[0]) for row in rows if row[0].isdigit()]  # not "(403 handshake)"
    assert sorted(documented) == sorted(int(code) for code in CloseCode)


@pytest.mark.parametrize(
    ("cell", "fields"),
    [
        ("`seq`, `by {id, username}`", {"seq": None, "by": {"id", "username"}}),
        ("`editing [{user, field}]`", {"editing": {"user", "field"}}),
        ("`status` (`applied`, `conflict` (first)), `seq`", {"status": None, "seq": None}),
        ("", {}),
    ],
)
def test_the_table_reader_reads_fields_and_skips_prose(cell, fields):
    assert parse_fields(cell) == fields


def test_a_drifted_table_is_reported():
    documented = {"seq": None, "trip_id": None, "conflict": None, "extra": None}
    [problem] = mismatches(
        "trip `conflict.detected`", protocol.ConflictDetected, documented, ENVELOPE
    )
    assert "documented but not in ConflictDetected: ['extra']" in problem
    [problem] = mismatches(
        "`trip.updated`",
        protocol.TripUpdated,
        {
            **dict.fromkeys(("seq", "trip_id", "update_id", "field", "value", "version", "source")),
            "by": {"id"},
        },
        ENVELOPE,
    )
    assert "`by` is documented with ['id']" in problem

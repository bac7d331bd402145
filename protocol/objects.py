"""The objects server messages carry (a user, a conflict, a run, ...) and the wire formats.

Each mirrors one payload builder (collaboration/payloads.py, agents/payloads.py, the presence
tracker); protocol.server checks every message against them when PROTOCOL_CHECK_SERVER_MESSAGES
is on. Strict: a number sent as a string, a missing or an unknown field is an error, not a
coercion.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from protocol.codes import ErrorCode, TripField

# -- formats ----------------------------------------------------------------------------------

# new_id(): a hex UUID, for message and connection ids.
HexId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
# now_iso(): the envelope's `timestamp`, with milliseconds.
Timestamp = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]
# iso(): every other moment, to the second.
Instant = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
Date = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\d$")]
UuidText = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
# The `id` of the client message a reply answers (protocol.client.ClientId's bounds).
RequestId = Annotated[str, Field(min_length=1, max_length=128)]
Count = Annotated[int, Field(ge=0)]
# A trip field's wire value (collaboration.fields.to_wire): text, a date, a decimal string, null.
FieldValue = str | None
TripRole = Literal["owner", "editor", "viewer"]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A moment that cannot be None gives a str, with no None for its caller to rule out.
@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...
def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


# -- objects ----------------------------------------------------------------------------------


class WireObject(BaseModel):
    """An object inside a server message: every field typed, no other field allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class UserRef(WireObject):
    id: int
    username: str


class ConnectionLimits(WireObject):
    """`connection.established`'s `limits`."""

    max_message_bytes: int
    heartbeat_timeout_seconds: float
    token_grace_seconds: float
    messages_per_minute: int
    message_burst: int


class RefreshBucket(WireObject):
    """`rate_limit_status`'s `auth_refresh`: the user's auth.refresh bucket. `remaining`: refreshes
    that may be sent now; `reset_at`: when the bucket is full again."""

    limit: Count
    burst: Count
    remaining: Count
    window_seconds: Count
    reset_at: Instant


class TripFields(WireObject):
    name: str
    destination: str
    start_date: Date | None
    end_date: Date | None
    budget: Annotated[str, Field(pattern=r"^\d+(\.\d\d)?$")]  # "3500", "3500.50"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    notes: str


class FieldVersions(WireObject):
    """The trip version at which each field last changed (0: never)."""

    name: Count
    destination: Count
    start_date: Count
    end_date: Count
    budget: Count
    currency: Count
    notes: Count


class TripState(WireObject):
    id: int
    fields: TripFields
    field_versions: FieldVersions
    version: Count
    seq: Count


class AppliedChange(WireObject):
    value: FieldValue
    by: UserRef | None  # None once that user is deleted
    version: Count


class ProposedChange(WireObject):
    value: FieldValue
    by: UserRef | None
    update_id: UuidText


class Conflict(WireObject):
    id: int
    trip_id: int
    field: TripField
    base_version: Count
    status: Literal["open", "resolved"]
    applied: AppliedChange
    proposed: ProposedChange
    resolution: Literal["mine", "theirs", "value"] | None
    resolved_value: FieldValue
    resolved_by: UserRef | None
    resolved_at: Instant | None
    created_at: Instant


class Collaborator(WireObject):
    user: UserRef
    connections: Annotated[int, Field(ge=1)]


class EditingEntry(WireObject):
    user: UserRef
    field: TripField
    expires_at: Instant


class ChatMessage(WireObject):
    id: int
    trip_id: int
    seq: Count
    author: UserRef | None
    text: str
    client_id: UuidText | None
    created_at: Instant


class Notification(WireObject):
    id: int
    kind: Literal["member_added", "role_changed", "conflict", "mention", "agent_run_finished"]
    title: str
    body: str
    link: str
    data: dict[str, JsonValue]
    created_at: Instant
    read_at: Instant | None


class AgentRun(WireObject):
    id: int
    agent: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: Annotated[int, Field(ge=0, le=100)]
    step: str
    message: str
    trip_id: int | None
    owner: UserRef
    version: Count
    created_at: Instant
    updated_at: Instant
    started_at: Instant | None
    finished_at: Instant | None


class ErrorBody(WireObject):
    """The seed's `error` object. `details` depends on the code (docs/protocol.md, Errors)."""

    code: ErrorCode = Field(strict=False)  # built from the enum, sent as its value
    message: str
    details: dict[str, JsonValue]

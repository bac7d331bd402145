"""Services: versions, conflicts, idempotency, validation, roles, the event log."""

from __future__ import annotations

import json
import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from collaboration import selectors
from collaboration.errors import InvalidChange, NotAllowed, NotFound
from collaboration.models import ClientMutation, Conflict, Trip, TripEvent
from collaboration.services import conflicts, locks, members, trips
from events.groups import trip_group
from tests import factories


@pytest.fixture
def people(db):
    return factories.make_crew()


update = factories.update


def test_applied_update_bumps_version_field_version_and_seq(people):
    alice, _, _, trip = people
    result = update(trip, alice, "name", "Porto", trip.version)
    trip.refresh_from_db()
    assert (result.status, result.value, result.version) == ("applied", "Porto", 2)
    assert trip.name == "Porto" and trip.field_versions["name"] == 2
    event = TripEvent.objects.get(trip=trip, seq=result.seq)
    assert event.message["type"] == "trip.updated"
    assert event.message["field"] == "name" and event.message["value"] == "Porto"
    assert event.message["by"] == {"id": alice.pk, "username": "alice"}


def test_what_an_edit_writes_reads_back_through_the_orm(people):
    """Edits write their rows with plain statements (collaboration.sql): every column must read
    back as the ORM would have written it, on SQLite and PostgreSQL alike."""
    from decimal import Decimal

    alice, _, _, trip = people
    before = Trip.objects.get(pk=trip.pk)
    update_id = uuid.uuid4()
    update(trip, alice, "budget", "1234.50", before.version, update_id=update_id)
    update(trip, alice, "start_date", "2027-03-01", before.version + 1)
    after = Trip.objects.get(pk=trip.pk)
    assert after.budget == Decimal("1234.50") and str(after.start_date) == "2027-03-01"
    assert after.version == before.version + 2 and after.seq == before.seq + 2
    assert after.field_versions == {
        **before.field_versions,
        "budget": before.version + 1,
        "start_date": before.version + 2,
    }
    assert after.field_editors["budget"][0] == alice.pk
    assert after.created_at == before.created_at and after.updated_at > before.updated_at
    assert (after.name, after.currency, after.notes) == (before.name, before.currency, before.notes)
    event = TripEvent.objects.get(trip=trip, seq=after.seq)
    assert event.actor_id == alice.pk and event.version == after.version
    assert event.field == "start_date" and event.message["value"] == "2027-03-01"
    assert event.created_at >= before.updated_at
    mutation = ClientMutation.objects.get(trip=trip, update_id=update_id)
    assert mutation.actor_id == alice.pk and mutation.request["value"] == "1234.50"
    assert mutation.result["status"] == "applied"
    again = update(trip, alice, "budget", "1234.50", before.version, update_id=update_id)
    assert (again.status, again.original_status) == ("duplicate", "applied")


def test_edits_of_different_fields_from_one_base_never_conflict(people):
    alice, bob, _, trip = people
    base = trip.version
    assert update(trip, alice, "name", "Porto", base).status == "applied"
    assert update(trip, bob, "budget", 3500, base).status == "applied"
    trip.refresh_from_db()
    assert (trip.name, str(trip.budget)) == ("Porto", "3500.00")
    assert not Conflict.objects.exists()


def test_stale_base_on_a_field_someone_else_changed_is_a_conflict_and_not_applied(people):
    alice, bob, _, trip = people
    base = trip.version
    update(trip, alice, "budget", 3000, base)
    result = update(trip, bob, "budget", 3500, base)
    trip.refresh_from_db()
    assert result.status == "conflict" and result.value == "3000"
    assert str(trip.budget) == "3000.00"
    conflict = Conflict.objects.get(pk=result.conflict_id)
    assert (conflict.applied_value, conflict.proposed_value) == ("3000", "3500")
    assert (conflict.applied_by, conflict.proposed_by) == (alice, bob)
    assert conflict.status == "open" and conflict.base_version == base
    assert trip.open_conflicts == 1
    assert TripEvent.objects.get(seq=result.seq).type == "conflict.detected"


def test_your_own_later_change_is_not_a_conflict(people):
    alice, _, _, trip = people
    base = trip.version
    update(trip, alice, "notes", "one", base)
    assert update(trip, alice, "notes", "two", base).status == "applied"


def test_a_change_by_someone_else_between_your_own_changes_is_a_conflict(people):
    alice, bob, _, trip = people
    base = trip.version
    update(trip, bob, "notes", "bob's", base)
    update(trip, alice, "notes", "alice's", base + 1)
    # Alice edits from `base` again: Bob's change came after it, though hers is the latest.
    assert update(trip, alice, "notes", "again", base).status == "conflict"


def test_same_update_id_five_times_in_sequence_has_one_effect(people):
    alice, _, _, trip = people
    before = trip.seq
    update_id = uuid.uuid4()
    results = [update(trip, alice, "name", "Porto", 1, update_id) for _ in range(5)]
    assert [r.status for r in results] == ["applied"] + ["duplicate"] * 4
    assert {(r.version, r.seq, r.original_status) for r in results} == {(2, before + 1, "applied")}
    trip.refresh_from_db()
    assert trip.version == 2 and trip.seq == before + 1
    assert ClientMutation.objects.count() == 1


def test_reusing_an_update_id_for_another_change_is_refused(people):
    alice, _, _, trip = people
    update_id = uuid.uuid4()
    update(trip, alice, "name", "Porto", 1, update_id)
    with pytest.raises(InvalidChange) as error:
        update(trip, alice, "name", "Faro", 1, update_id)
    assert error.value.field == "update_id"


def test_viewer_cannot_edit_and_stranger_is_not_found(people):
    _, _, carol, trip = people
    before = trip.seq
    with pytest.raises(NotAllowed):
        update(trip, carol, "name", "Nope", 1)
    stranger = factories.make_user("stranger")
    with pytest.raises(NotFound):
        update(trip, stranger, "name", "Nope", 1)
    trip.refresh_from_db()
    assert trip.version == 1 and trip.seq == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 201),
        ("name", 5),
        ("budget", -1),
        ("budget", "abc"),
        ("budget", "1.001"),
        ("budget", True),
        ("budget", "NaN"),
        ("currency", "euro"),
        ("start_date", "2027-02-30"),
        ("end_date", 20270101),
        ("notes", "x" * 10_001),
    ],
)
def test_bad_values_are_refused_with_the_field_named_and_nothing_stored(people, field, value):
    alice, _, _, trip = people
    events = TripEvent.objects.count()
    with pytest.raises(InvalidChange) as error:
        update(trip, alice, field, value, 1)
    assert error.value.field == field
    trip.refresh_from_db()
    assert trip.version == 1 and TripEvent.objects.count() == events


def test_dates_must_stay_in_order(people):
    alice, _, _, trip = people
    update(trip, alice, "start_date", "2027-05-14", 1)
    with pytest.raises(InvalidChange) as error:
        update(trip, alice, "end_date", "2027-05-01", 2)
    assert error.value.field == "end_date"
    trip.refresh_from_db()
    assert trip.end_date is None and trip.version == 2


def test_moving_both_dates_at_once_is_checked_on_the_result(people):
    alice, _, _, trip = people
    trips.trip_update_fields(
        trip_id=trip.pk,
        actor=alice,
        idempotency_key="k1",
        changes={"start_date": "2027-05-14", "end_date": "2027-05-17"},
        base_version=1,
    )
    trips.trip_update_fields(
        trip_id=trip.pk,
        actor=alice,
        idempotency_key="k2",
        changes={"start_date": "2027-06-01", "end_date": "2027-06-05"},
        base_version=3,
    )
    trip.refresh_from_db()
    assert (str(trip.start_date), str(trip.end_date)) == ("2027-06-01", "2027-06-05")


def test_base_version_from_the_future_is_refused(people):
    alice, _, _, trip = people
    with pytest.raises(InvalidChange) as error:
        update(trip, alice, "name", "x", 99)
    assert error.value.field == "base_version"


@pytest.fixture
def conflict(people):
    alice, bob, _, trip = people
    update(trip, alice, "budget", 3000, 1)
    result = update(trip, bob, "budget", 3500, 1)
    return Conflict.objects.get(pk=result.conflict_id)


@pytest.mark.parametrize(
    ("resolver", "choice", "expected"),
    [("alice", "mine", "3000"), ("alice", "theirs", "3500"), ("bob", "mine", "3500"),
     ("bob", "theirs", "3000")],
)  # fmt: skip
def test_mine_and_theirs_are_relative_to_the_resolver(people, conflict, resolver, choice, expected):
    users = {"alice": people[0], "bob": people[1]}
    trip = people[3]
    result = conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=conflict.pk, actor=users[resolver], choice=choice
    )
    trip.refresh_from_db()
    conflict.refresh_from_db()
    assert result.value == expected
    assert f"{trip.budget.normalize():f}" == expected
    assert conflict.status == "resolved" and conflict.resolved_value == expected
    assert trip.open_conflicts == 0
    assert conflict.resolved_by == users[resolver] and conflict.resolution == choice
    types = list(TripEvent.objects.filter(trip=trip).values_list("type", flat=True))
    assert types[-1] == "conflict.resolved"
    # "theirs"/"mine" naming the value already in force applies no change, only the closing.
    assert ("trip.updated" == types[-2]) == (expected == "3500")


def test_explicit_value_resolution_is_validated(people, conflict):
    alice, _, _, trip = people
    with pytest.raises(InvalidChange):
        conflicts.conflict_resolve(
            trip_id=trip.pk, conflict_id=conflict.pk, actor=alice, choice="value", value=-5
        )
    result = conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=conflict.pk, actor=alice, choice="value", value="3250"
    )
    assert result.value == "3250"


def test_resolving_twice_says_already_resolved(people, conflict):
    alice, bob, _, trip = people
    conflicts.conflict_resolve(trip_id=trip.pk, conflict_id=conflict.pk, actor=alice, choice="mine")
    again = conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=conflict.pk, actor=bob, choice="mine"
    )
    assert again.status == "already_resolved"
    trip.refresh_from_db()
    assert str(trip.budget) == "3000.00"


@pytest.mark.parametrize(("choice", "changes_the_value"), [("mine", True), ("theirs", False)])
def test_what_a_resolution_writes_reads_back_through_the_orm(
    people, conflict, choice, changes_the_value
):
    """Resolutions save the trip with the plain UPDATE edits use (collaboration.sql): every
    column must read back as the ORM would have written it, on SQLite and PostgreSQL alike."""
    from decimal import Decimal

    _, bob, _, trip = people
    before = Trip.objects.get(pk=trip.pk)
    columns = [f.attname for f in Trip._meta.concrete_fields]
    # bob proposed 3500 against alice's 3000: his "mine" applies 3500, his "theirs" keeps 3000.
    result = conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=conflict.pk, actor=bob, choice=choice
    )
    after = Trip.objects.get(pk=trip.pk)
    expected = {name: getattr(before, name) for name in columns}
    expected.update(open_conflicts=0, updated_at=after.updated_at)
    if changes_the_value:
        version = before.version + 1
        expected.update(
            budget=Decimal("3500.00"),
            version=version,
            seq=before.seq + 2,  # trip.updated, then conflict.resolved
            field_versions={**before.field_versions, "budget": version},
            field_editors={
                **before.field_editors,
                "budget": [bob.pk, before.field_versions["budget"]],
            },
        )
    else:
        expected.update(seq=before.seq + 1)  # conflict.resolved only
    assert {name: getattr(after, name) for name in columns} == expected
    assert after.updated_at > before.updated_at

    # The answer (the socket's ack, the REST result) agrees with what was written.
    assert (result.status, result.original_status) == ("applied", "applied")
    assert result.value == ("3500" if changes_the_value else "3000")
    assert result.version == after.version and result.conflict_id == conflict.pk
    logged = list(
        TripEvent.objects.filter(trip=trip, seq__gt=before.seq).values_list("seq", "type")
    )
    expected_events = [(after.seq, "conflict.resolved")]
    if changes_the_value:
        expected_events.insert(0, (before.seq + 1, "trip.updated"))
    assert logged == expected_events
    assert result.seq == logged[0][0]
    closing = TripEvent.objects.get(trip=trip, seq=after.seq)
    assert closing.actor_id == bob.pk and closing.field == "budget"
    assert closing.message["conflict"]["status"] == "resolved"
    mutation = ClientMutation.objects.get(trip=trip, actor=bob, update_id=result.update_id)
    assert mutation.result == result.as_dict()
    assert mutation.request == {
        "kind": "resolve",
        "conflict_id": conflict.pk,
        "choice": choice,
        "value": None,
    }
    again = conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=conflict.pk, actor=bob, choice=choice
    )
    assert again.as_dict() == {**result.as_dict(), "status": "duplicate"}
    assert Trip.objects.get(pk=trip.pk).seq == after.seq


def test_only_the_two_editors_or_an_owner_resolve(people, conflict):
    alice, _, carol, trip = people
    dave = factories.make_user("dave")
    members.trip_member_set(trip_id=trip.pk, actor=alice, user=dave, role="editor")
    with pytest.raises(NotAllowed):
        conflicts.conflict_resolve(
            trip_id=trip.pk, conflict_id=conflict.pk, actor=dave, choice="mine"
        )
    with pytest.raises(NotAllowed):
        conflicts.conflict_resolve(
            trip_id=trip.pk, conflict_id=conflict.pk, actor=carol, choice="mine"
        )


def test_log_is_pruned_past_retention_and_old_cursors_must_resync(people, settings):
    settings.TRIP_EVENT_RETENTION = 5
    alice, _, _, trip = people
    for i in range(15):
        update(trip, alice, "notes", f"n{i}", i + 1)
    trip.refresh_from_db()
    assert trip.log_floor > 0
    assert TripEvent.objects.filter(trip=trip).count() <= 6
    assert not selectors.events_after(trip_id=trip.pk, after=0).complete
    recent = selectors.events_after(trip_id=trip.pk, after=trip.log_floor)
    assert recent.complete
    assert [m["seq"] for m in recent.messages] == list(range(trip.log_floor + 1, trip.seq + 1))


def test_members_are_managed_by_owners_and_a_trip_keeps_an_owner(people):
    alice, bob, _, trip = people
    dave = factories.make_user("dave")
    with pytest.raises(NotAllowed):
        members.trip_member_set(trip_id=trip.pk, actor=bob, user=dave, role="editor")
    members.trip_member_set(trip_id=trip.pk, actor=alice, user=dave, role="viewer")
    assert selectors.trip_role(trip_id=trip.pk, user_id=dave.pk) == "viewer"
    with pytest.raises(InvalidChange):
        members.trip_member_remove(trip_id=trip.pk, actor=alice, user=alice)
    members.trip_member_remove(trip_id=trip.pk, actor=bob, user=bob)  # anyone may leave
    assert selectors.trip_role(trip_id=trip.pk, user_id=bob.pk) is None


@pytest.mark.django_db(transaction=True)
async def test_rolled_back_change_broadcasts_nothing_and_a_committed_one_does():
    alice = await sync_to_async(factories.make_user)("alice")
    trip = await sync_to_async(factories.make_trip)(alice)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(trip_group(trip.pk), channel)

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            update(trip, alice, "name", "Never seen", 1)
            raise RuntimeError("the caller's transaction fails after the edit")

    await sync_to_async(rolled_back)()
    await sync_to_async(update)(trip, alice, "name", "Seen", 1)
    event = await layer.receive(channel)
    assert json.loads(event["text"])["value"] == "Seen"  # the first event is the commit
    assert (await sync_to_async(Trip.objects.get)(pk=trip.pk)).name == "Seen"
    await layer.group_discard(trip_group(trip.pk), channel)


def test_trips_without_editor_records_fall_back_to_the_log(people):
    """Trips written before field_editors existed: the conflict test reads the event log."""
    alice, bob, _, trip = people
    update(trip, bob, "notes", "bob's", 1)
    Trip.objects.filter(pk=trip.pk).update(field_editors={})
    assert update(trip, alice, "notes", "alice's", 1).status == "conflict"
    assert update(trip, bob, "notes", "bob again", 2).status == "applied"


def test_the_edit_lock_is_only_taken_inside_a_transaction(transactional_db):
    from django.db.transaction import TransactionManagementError

    alice, _, _, trip = factories.make_crew()  # outside the test's own transaction
    with pytest.raises(TransactionManagementError):
        locks.lock_for_edit(trip.pk, alice)
    with transaction.atomic():
        locked, role = locks.lock_for_edit(trip.pk, alice)
    assert (locked.pk, role) == (trip.pk, "owner")

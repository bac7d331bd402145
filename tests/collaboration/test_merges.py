"""Merges in the services (collaboration/services/merges.py): a stale change of the notes merged
with the changes since its base, its answer, its retries, and where it stays a conflict."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from collaboration.models import ClientMutation, Conflict, Trip, TripEvent
from tests import factories

pytestmark = pytest.mark.django_db

NOTES = "".join(f"Day {i}: walk.\n" for i in range(1, 11))


def with_line(text: str, number: int, line: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[number - 1] = line
    return "".join(lines)


update = factories.update


@pytest.fixture
def crew():
    """alice owns, bob edits; the notes have ten lines, set at version 2."""
    alice, bob, _, trip = factories.make_crew()
    update(trip, alice, "notes", NOTES, 1)
    trip.refresh_from_db()
    return alice, bob, trip


def test_a_stale_change_to_another_line_is_merged_and_applied_as_a_merge(crew):
    alice, bob, trip = crew
    bobs = update(trip, bob, "notes", with_line(NOTES, 2, "Day 2: museum.\n"), 2)
    result = update(trip, alice, "notes", with_line(NOTES, 7, "Day 7: beach.\n"), 2)
    both = with_line(with_line(NOTES, 2, "Day 2: museum.\n"), 7, "Day 7: beach.\n")
    trip.refresh_from_db()
    assert (result.status, result.original_status, result.value) == ("merged", "merged", both)
    assert result.conflict_id is None and trip.notes == both
    assert (result.version, trip.version, trip.field_versions["notes"]) == (4, 4, 4)
    event = TripEvent.objects.get(trip=trip, seq=result.seq)
    assert (event.type, event.source, event.version, event.actor) == (
        "trip.updated",
        "merge",
        4,
        alice,
    )
    assert event.before == bobs.value  # what the merge replaced
    assert event.message["value"] == both and event.message["source"] == "merge"
    assert not Conflict.objects.exists() and trip.open_conflicts == 0


def test_a_retried_merge_answers_duplicate_with_the_merged_value_and_changes_nothing(crew):
    alice, bob, trip = crew
    update(trip, bob, "notes", with_line(NOTES, 2, "Day 2: museum.\n"), 2)
    update_id = uuid.uuid4()
    first = update(trip, alice, "notes", with_line(NOTES, 7, "Day 7: beach.\n"), 2, update_id)
    trip.refresh_from_db()
    again = update(trip, alice, "notes", with_line(NOTES, 7, "Day 7: beach.\n"), 2, update_id)
    assert again.as_dict() == {**first.as_dict(), "status": "duplicate"}
    assert again.original_status == "merged"
    assert Trip.objects.get(pk=trip.pk).seq == trip.seq
    assert ClientMutation.objects.get(update_id=update_id).result["status"] == "merged"


def test_two_stale_changes_of_one_line_are_a_conflict_as_before(crew):
    alice, bob, trip = crew
    bobs = update(trip, bob, "notes", with_line(NOTES, 3, "Day 3: rest.\n"), 2)
    result = update(trip, alice, "notes", with_line(NOTES, 3, "Day 3: hike.\n"), 2)
    trip.refresh_from_db()
    assert (result.status, result.value) == ("conflict", bobs.value)
    assert trip.notes == bobs.value
    conflict = Conflict.objects.get(pk=result.conflict_id)
    assert conflict.proposed_value == with_line(NOTES, 3, "Day 3: hike.\n")
    assert (conflict.applied_by, conflict.proposed_by) == (bob, alice)
    assert TripEvent.objects.get(seq=result.seq).type == "conflict.detected"


@pytest.mark.parametrize("field", ["name", "destination"])
def test_the_one_line_labels_are_never_merged(crew, field):
    alice, bob, trip = crew
    update(trip, bob, field, "Lisbon. Porto.", trip.version)
    update(trip, alice, field, "Lisbon. Faro.", trip.version + 1)
    assert update(trip, bob, field, "Coimbra. Porto.", trip.version + 1).status == "conflict"


def test_budget_changes_from_one_base_still_conflict(crew):
    alice, bob, trip = crew
    update(trip, alice, "budget", "3000", 2)
    result = update(trip, bob, "budget", "3500", 2)
    assert (result.status, result.value) == ("conflict", "3000")


def test_a_base_pruned_from_the_log_is_a_conflict(crew, settings):
    settings.TRIP_EVENT_RETENTION = 2
    alice, bob, trip = crew
    notes = NOTES
    for line in range(2, 6):  # bob changes lines 2-5, pushing his first change out of the log
        notes = with_line(notes, line, f"Day {line}: museum.\n")
        update(trip, bob, "notes", notes, line)
    trip.refresh_from_db()
    assert not TripEvent.objects.filter(trip=trip, version=3).exists()
    # The oldest change kept would give a base with line 2 already changed: alice's notes would
    # then seem to put line 2 back, and would undo bob's change unseen.
    result = update(trip, alice, "notes", with_line(NOTES, 9, "Day 9: fly.\n"), 2)
    assert result.status == "conflict"
    trip.refresh_from_db()
    assert trip.notes == notes


def test_a_log_pruned_only_below_the_base_still_merges(settings):
    settings.TRIP_EVENT_RETENTION = 2
    alice, bob, _, trip = factories.make_crew()  # two membership events, pruned below
    update(trip, alice, "notes", NOTES, 1)
    update(trip, bob, "notes", with_line(NOTES, 1, "Day 1: arrive.\n"), 2)
    trip.refresh_from_db()
    assert trip.log_floor > 0 and TripEvent.objects.filter(trip=trip, version=2).exists()
    result = update(trip, alice, "notes", with_line(NOTES, 10, "Day 10: home.\n"), 2)
    assert result.status == "merged"
    assert result.value == with_line(with_line(NOTES, 1, "Day 1: arrive.\n"), 10, "Day 10: home.\n")


def test_changes_logged_before_before_was_kept_merge_from_the_change_before_them(crew):
    alice, bob, trip = crew
    update(trip, bob, "notes", with_line(NOTES, 2, "Day 2: museum.\n"), 2)
    TripEvent.objects.filter(trip=trip).update(before=None)  # as logged by the last release
    # The notes at version 2 are what the change that made version 2 set.
    result = update(trip, alice, "notes", with_line(NOTES, 5, "Day 5: boat.\n"), 2)
    assert result.status == "merged"
    assert result.value == with_line(with_line(NOTES, 2, "Day 2: museum.\n"), 5, "Day 5: boat.\n")


def test_an_unknown_base_from_before_before_was_kept_is_a_conflict():
    alice, bob, _, trip = factories.make_crew()
    update(trip, bob, "notes", "Bob's first notes.\n", 1)
    TripEvent.objects.filter(trip=trip).update(before=None)
    # The notes at version 1 were set when the trip was made: nothing logged says what they were.
    assert update(trip, alice, "notes", "Alice's notes.\n", 1).status == "conflict"


def test_a_merge_longer_than_the_field_allows_is_a_conflict(crew):
    alice, bob, trip = crew
    long_line = "x" * 5_000 + "\n"
    update(trip, bob, "notes", with_line(NOTES, 1, long_line), 2)
    result = update(trip, alice, "notes", with_line(NOTES, 10, long_line), 2)
    assert result.status == "conflict"
    trip.refresh_from_db()
    assert len(trip.notes) <= 10_000


def test_a_merge_that_changes_nothing_is_answered_without_an_event(crew):
    alice, bob, trip = crew
    same = with_line(NOTES, 4, "Day 4: train.\n")
    update(trip, bob, "notes", same, 2)
    trip.refresh_from_db()
    result = update(trip, alice, "notes", same, 2)  # alice made the same change
    after = Trip.objects.get(pk=trip.pk)
    assert (result.status, result.value, result.seq) == ("merged", same, 0)
    assert (result.version, after.version, after.seq) == (trip.version, trip.version, trip.seq)


def test_rest_patch_merges_the_notes_and_a_retry_is_a_duplicate(crew):
    alice, bob, trip = crew
    update(trip, bob, "notes", with_line(NOTES, 2, "Day 2: museum.\n"), 2)
    client = APIClient()
    client.force_authenticate(alice)
    both = with_line(with_line(NOTES, 2, "Day 2: museum.\n"), 7, "Day 7: beach.\n")
    for status in ("merged", "duplicate"):
        response = client.patch(
            f"/api/trips/{trip.pk}/",
            {"notes": with_line(NOTES, 7, "Day 7: beach.\n"), "budget": "900"},
            format="json",
            HTTP_IF_MATCH='"2"',
            HTTP_IDEMPOTENCY_KEY="alice-patch-1",
        )
        assert response.status_code == 200, response.content
        body = response.json()
        notes, budget = body["results"]
        assert (notes["status"], notes["original_status"], notes["value"]) == (
            status,
            "merged",
            both,
        )
        assert budget["original_status"] == "applied"
        assert body["fields"]["notes"] == both and response["ETag"] == '"5"'

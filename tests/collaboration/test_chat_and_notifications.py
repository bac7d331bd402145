"""Chat and notification services and their REST API."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from collaboration.errors import InvalidChange, NotFound
from collaboration.models import ChatMessage, Notification
from collaboration.services import chat, members, notifications, trips
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def crew():
    return factories.make_crew()  # alice owner, bob editor, carol viewer


def as_user(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_chat_is_for_every_member_in_seq_order(crew):
    alice, bob, carol, trip = crew
    seqs = [
        chat.chat_post(trip_id=trip.pk, author=user, text=f"hi from {user}").message["seq"]
        for user in (alice, bob, carol)  # the viewer too
    ]
    assert seqs == [1, 2, 3]
    stranger = factories.make_user("stranger")
    with pytest.raises(NotFound):
        chat.chat_post(trip_id=trip.pk, author=stranger, text="let me in")


def test_chat_text_is_checked_and_stored_as_plain_text(crew, settings):
    alice, _, _, trip = crew
    settings.CHAT_MAX_LENGTH = 10
    for bad in ("", "   ", "x" * 11):
        with pytest.raises(InvalidChange) as error:
            chat.chat_post(trip_id=trip.pk, author=alice, text=bad)
        assert error.value.field == "text"
    posted = chat.chat_post(trip_id=trip.pk, author=alice, text="<b>hi</b>")
    assert posted.message["text"] == "<b>hi</b>"  # stored verbatim; clients render it as text


def test_a_retried_send_posts_once(crew):
    alice, _, _, trip = crew
    client_id = uuid.uuid4()
    first = chat.chat_post(trip_id=trip.pk, author=alice, text="once", client_id=client_id)
    again = chat.chat_post(trip_id=trip.pk, author=alice, text="once", client_id=client_id)
    assert not first.duplicate and again.duplicate
    assert again.message == first.message
    assert ChatMessage.objects.filter(trip=trip).count() == 1


def test_a_mention_notifies_the_mentioned_member_once_and_nobody_else(crew):
    alice, bob, carol, trip = crew
    stranger = factories.make_user("stranger")
    chat.chat_post(
        trip_id=trip.pk,
        author=alice,
        text="@bob can you book it? @bob! cc @stranger and me, @alice; mail@carol.example",
    )
    mentions = Notification.objects.filter(kind=Notification.Kind.MENTION)
    assert [n.recipient for n in mentions] == [bob]
    note = mentions.get()
    assert note.data["trip_id"] == trip.pk and note.data["by"]["username"] == "alice"
    assert note.link == f"/trips/{trip.pk}/edit"
    assert not mentions.filter(recipient__in=[stranger, alice, carol]).exists()


def test_membership_changes_and_conflicts_notify_who_they_concern(crew):
    alice, bob, _carol, trip = crew
    dave = factories.make_user("dave")
    members.trip_member_set(trip_id=trip.pk, actor=alice, user=dave, role="viewer")
    members.trip_member_set(trip_id=trip.pk, actor=alice, user=dave, role="editor")
    members.trip_member_set(trip_id=trip.pk, actor=alice, user=dave, role="editor")  # no change
    kinds = list(
        Notification.objects.filter(recipient=dave).order_by("id").values_list("kind", flat=True)
    )
    assert kinds == ["member_added", "role_changed"]

    trips.trip_update(
        trip_id=trip.pk,
        actor=alice,
        update_id=uuid.uuid4(),
        field="budget",
        value="100",
        base_version=trip.version,
    )
    trips.trip_update(
        trip_id=trip.pk,
        actor=bob,
        update_id=uuid.uuid4(),
        field="budget",
        value="200",
        base_version=trip.version,
    )
    conflict_notes = Notification.objects.filter(kind="conflict")
    assert [n.recipient for n in conflict_notes] == [alice]  # bob got the conflict ack


def test_reading_marks_only_your_own(crew):
    alice, bob, *_ = crew
    mine = notifications.notify(recipient=alice, kind="mention", title="one")
    notifications.notify(recipient=alice, kind="mention", title="two")
    theirs = notifications.notify(recipient=bob, kind="mention", title="bob's")
    changed, unread = notifications.notification_read(user=alice, ids=[mine.pk, theirs.pk])
    assert changed == [mine.pk] and unread == 1
    theirs.refresh_from_db()
    assert theirs.read_at is None
    changed, unread = notifications.notification_read(user=alice)
    assert len(changed) == 1 and unread == 0


def test_rest_chat_pages_with_cursors_and_posts_idempotently(crew):
    alice, bob, _, trip = crew
    for n in range(1, 8):
        chat.chat_post(trip_id=trip.pk, author=alice, text=f"m{n}")
    newest = as_user(bob).get(f"/api/trips/{trip.pk}/chat/?limit=3").json()
    assert [m["seq"] for m in newest["messages"]] == [5, 6, 7]
    assert newest["has_more"] and newest["next_before"] == 5 and newest["seq"] == 7
    older = as_user(bob).get(f"/api/trips/{trip.pk}/chat/?limit=3&before=5").json()
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4]
    after = as_user(bob).get(f"/api/trips/{trip.pk}/chat/?after=5").json()
    assert [m["seq"] for m in after["messages"]] == [6, 7] and not after["has_more"]

    url = f"/api/trips/{trip.pk}/chat/"
    first = as_user(bob).post(url, {"text": "via REST"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = as_user(bob).post(url, {"text": "via REST"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["duplicate"] and again.json()["message"] == first.json()["message"]

    bad = as_user(bob).post(url, {"text": ""}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_MESSAGE_FORMAT"
    stranger = as_user(factories.make_user("stranger")).get(url)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "AUTHORIZATION_FAILED"


def test_rest_notifications_list_count_and_read(crew):
    alice, bob, *_ = crew
    notes = [notifications.notify(recipient=alice, kind="mention", title=f"n{i}") for i in range(3)]
    other = notifications.notify(recipient=bob, kind="mention", title="bob's")
    client = as_user(alice)
    listed = client.get("/api/notifications/").json()
    assert [n["title"] for n in listed["notifications"]] == ["n2", "n1", "n0"]
    assert listed["unread_count"] == 3
    assert client.post(f"/api/notifications/{notes[0].pk}/read/").json()["unread_count"] == 2
    assert client.get("/api/notifications/unread-count/").json() == {"unread_count": 2}
    unread = client.get("/api/notifications/?unread=true").json()["notifications"]
    assert [n["title"] for n in unread] == ["n2", "n1"]
    refused = client.post(f"/api/notifications/{other.pk}/read/")
    assert refused.status_code == 404
    assert client.post("/api/notifications/read-all/").json()["unread_count"] == 0


def test_chat_text_with_a_lone_surrogate_is_the_text_fields_error(crew):
    alice, *_, trip = crew
    with pytest.raises(InvalidChange) as error:
        chat.chat_post(trip_id=trip.pk, author=alice, text="see you \ud800 there")
    assert error.value.field == "text"
    assert "surrogate" in error.value.message
    assert not ChatMessage.objects.filter(trip=trip).exists()

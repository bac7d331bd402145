"""The admin's trip timeline (collaboration.admin.TripAdmin.timeline_view), as a staff user sees
it through the Django test client."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from collaboration import admin as collaboration_admin
from collaboration.services import conflicts
from tests import factories

pytestmark = pytest.mark.django_db


update = factories.update


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> list[list[str]]:
    """The timeline table's body rows, as the text of their cells (stripped)."""
    body = html.split('<table id="timeline">', 1)[1].split("</tbody>", 1)[0]
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]


@pytest.fixture
def timeline():
    """alice edits, bob merges a stale change of the notes, a budget conflict is resolved."""
    alice, bob, _, trip = factories.make_crew()
    update(trip, alice, "notes", "Pack.\nFly.\n", 1)  # v2
    update(trip, alice, "notes", "Pack socks.\nFly.\n", 2)  # v3
    update(trip, bob, "notes", "Pack.\nFly at nine.\n", 2)  # v4, merged
    update(trip, alice, "budget", "3000", 4)  # v5
    clash = update(trip, bob, "budget", "3500", 4)
    conflicts.conflict_resolve(
        trip_id=trip.pk, conflict_id=clash.conflict_id, actor=bob, choice="mine"
    )
    staff = factories.make_user("operator", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_trip"))
    trip.refresh_from_db()
    return trip, staff


def test_the_trip_page_links_to_its_timeline_of_every_event_newest_first(timeline):
    trip, staff = timeline
    client = signed_in(staff)
    change_page = client.get(f"/admin/collaboration/trip/{trip.pk}/change/")
    assert change_page.status_code == 200
    url = f"/admin/collaboration/trip/{trip.pk}/timeline/"
    assert f'href="{url}"' in change_page.content.decode()
    page = client.get(url)
    assert page.status_code == 200
    shown = rows(page.content.decode())
    assert [row[:3] for row in shown] == [
        [str(trip.seq), "conflict.resolved", "budget"],
        [str(trip.seq - 1), "trip.updated", "budget"],
        [str(trip.seq - 2), "conflict.detected", "budget"],
        [str(trip.seq - 3), "trip.updated", "budget"],
        [str(trip.seq - 4), "trip.updated", "notes"],
        [str(trip.seq - 5), "trip.updated", "notes"],
        [str(trip.seq - 6), "trip.updated", "notes"],
        [str(trip.seq - 7), "member.updated", "—"],
        [str(trip.seq - 8), "member.updated", "—"],
    ]
    # before, after, by, source
    assert [row[3:7] for row in shown[:7]] == [
        ["—", "3500", "bob", "—"],
        ["3000", "3500", "bob", "resolution"],
        ["3000", "3500", "bob", "—"],
        ["0", "3000", "alice", "edit"],
        ["Pack socks.\nFly.", "Pack socks.\nFly at nine.", "bob", "merge"],
        ["Pack.\nFly.", "Pack socks.\nFly.", "alice", "edit"],
        ["", "Pack.\nFly.", "alice", "edit"],
    ]
    assert [row[4] for row in shown[-2:]] == ["carol: viewer", "bob: editor"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[7]) for row in shown)


def test_the_timeline_is_paged(timeline, monkeypatch):
    trip, staff = timeline
    monkeypatch.setattr(collaboration_admin, "TIMELINE_PAGE_SIZE", 4)
    client = signed_in(staff)
    url = f"/admin/collaboration/trip/{trip.pk}/timeline/"
    pages = [rows(client.get(url, {"page": n}).content.decode()) for n in (1, 2, 3)]
    assert [len(page) for page in pages] == [4, 4, 1]
    assert [row[0] for page in pages for row in page] == [
        str(seq) for seq in range(trip.seq, 0, -1)
    ]
    assert 'href="?page=2"' in client.get(url).content.decode()


def test_only_staff_who_may_view_trips_see_it(timeline):
    trip, _ = timeline
    url = f"/admin/collaboration/trip/{trip.pk}/timeline/"
    member = factories.make_user("member")
    assert signed_in(member).get(url).status_code == 302  # to the admin's sign-in
    staff_without = factories.make_user("clerk", is_staff=True)
    assert signed_in(staff_without).get(url).status_code == 404
    operator = factories.make_user("op2", is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_trip"))
    assert (
        signed_in(operator).get(f"/admin/collaboration/trip/{trip.pk + 1000}/timeline/").status_code
        == 404
    )

"""The trip endpoint: members only (the full collaboration protocol arrives with issue 3)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests import factories
from tests.wsclient import closed_with, connect, open_socket, recv_json, send_json

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("role", ["owner", "editor", "viewer"])
async def test_members_of_every_role_connect(live, role):
    owner = await sync_to_async(factories.make_user)("owner")
    member = await sync_to_async(factories.make_user)("member")
    trip = await sync_to_async(factories.make_trip)(
        owner, {member: role} if role != "owner" else {}
    )
    user = owner if role == "owner" else member
    ws, _ = await connect(
        live.ws_url, f"/ws/trips/{trip.pk}/", await sync_to_async(factories.access_token)(user)
    )
    await send_json(ws, {"type": "echo", "id": "e", "data": {"role": role}})
    assert (await recv_json(ws))["data"] == {"role": role}
    await ws.close()


@pytest.mark.parametrize("which", ["not-a-member", "no-such-trip"])
async def test_non_member_and_unknown_trip_are_refused_alike(live, which):
    owner = await sync_to_async(factories.make_user)("owner")
    stranger = await sync_to_async(factories.make_user)("stranger")
    trip = await sync_to_async(factories.make_trip)(owner)
    trip_id = trip.pk if which == "not-a-member" else trip.pk + 1000
    ws = await open_socket(live.ws_url, f"/ws/trips/{trip_id}/")
    await send_json(ws, {"token": await sync_to_async(factories.access_token)(stranger), "id": "a"})
    code, messages = await closed_with(ws)
    assert code == 4003
    assert messages[-1]["error"]["code"] == "AUTHORIZATION_FAILED"
    assert messages[-1]["request_id"] == "a"
    assert messages[-1]["error"]["message"] == "You are not a member of this trip."

"""Text that users type is shown as text on the pages (collaboration/templates): markup in a
trip's name is escaped, never run (docs/security.md, ASVS 1.2.1)."""

from __future__ import annotations

import pytest
from django.test import Client

from collaboration.services.trips import trip_create
from tests import factories

pytestmark = pytest.mark.django_db

MARKUP = '<script>alert("name")</script><img src=x onerror=alert(1)>'


def test_a_trip_name_with_markup_is_shown_as_text_on_my_trips():
    alice = factories.make_user("alice")
    trip_create(owner=alice, name=MARKUP)
    client = Client()
    assert client.login(username="alice", password=factories.PASSWORD)
    page = client.get("/trips/").content.decode()
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;&lt;img src=x" in page
    assert "<script>alert" not in page and "<img src=x" not in page

"""The browser client's folder is a static folder and an npm package: its development files
(node_modules and the type checks) are neither listed nor served."""

from __future__ import annotations

from django.contrib.staticfiles import finders
from django.test import Client


def test_the_finders_list_the_client_but_not_its_node_modules():
    listed = [path for finder in finders.get_finders() for path, _ in finder.list(None)]
    assert "websocket-connection.js" in listed
    assert not [p for p in listed if "node_modules" in p or p.startswith("types-test")]


def test_a_file_of_node_modules_is_not_served(db):
    assert Client().get("/static/tripsage/js/websocket-connection.js").status_code == 200
    assert Client().get("/static/tripsage/js/node_modules/react/package.json").status_code == 404
    assert finders.find("tripsage/js/node_modules/react/package.json") is None

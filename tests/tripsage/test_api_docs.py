"""Swagger UI (/api/docs/) and Redoc (/api/redoc/) load every file from the service itself, served
by a real daphne process; the browsable API's login at /api-auth/login/ signs a user in."""

from __future__ import annotations

import json
import re
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from tests.conftest import DaphneServer
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db


class _Resources(HTMLParser):
    """Every URL the page makes the browser load: script src, link href (stylesheet, icon,
    preconnect), img src; and any absolute URL in its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_script = False
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img", "iframe") and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))
        if tag == "redoc" and found.get("spec-url"):
            self.urls.append(str(found["spec-url"]))
        self._in_script = tag == "script" and not found.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline.append(data)


def _get(url: str, accept: str = "*/*") -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def _page_resources(server: DaphneServer, path: str) -> tuple[list[str], str]:
    status, content_type, body = _get(f"{server.http_url}{path}", "text/html")
    assert status == 200 and content_type.startswith("text/html")
    parser = _Resources()
    parser.feed(body.decode())
    return parser.urls, "\n".join(parser.inline)


@pytest.mark.parametrize(
    ("path", "needs"),
    [
        (
            "/api/docs/",
            ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"],
        ),
        ("/api/redoc/", ["redoc.standalone.js"]),
    ],
)
def test_docs_page_loads_only_files_the_service_serves(
    server: DaphneServer, path: str, needs: list[str]
) -> None:
    urls, inline = _page_resources(server, path)
    for name in needs:
        assert any(url.endswith(name) for url in urls), (name, urls)
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{path} loads {url} from elsewhere"
        status, _, body = _get(urljoin(f"{server.http_url}{path}", url))
        assert status == 200 and body, url
    # No absolute URL in the page's own script either (a CDN, the online validator).
    assert not re.search(r"https?://", inline), inline


def test_swagger_ui_reads_the_schema_the_service_serves(server: DaphneServer) -> None:
    _, inline = _page_resources(server, "/api/docs/")
    match = re.search(r'url:\s*"([^"]+)"', inline)
    assert match, inline
    assert match.group(1) == "/api/schema/"
    assert re.search(r'"validatorUrl":\s*null', inline), inline
    status, _, body = _get(f"{server.http_url}{match.group(1)}", "application/vnd.oai.openapi+json")
    schema = json.loads(body)
    assert status == 200 and schema["openapi"].startswith("3.") and "/api/trips/" in schema["paths"]


def test_redoc_reads_the_schema_the_service_serves(server: DaphneServer) -> None:
    urls, inline = _page_resources(server, "/api/redoc/")
    spec = [url for url in urls if "schema" in url] or re.findall(r'Redoc\.init\("([^"]+)"', inline)
    assert spec == ["/api/schema/"], (urls, inline)
    assert "fonts.googleapis" not in inline


def test_browsable_api_links_to_its_login() -> None:
    response = Client().get("/api/trips/", HTTP_ACCEPT="text/html")
    assert response.status_code in (401, 403)
    assert re.search(
        r"href=['\"]/api-auth/login/\?next=/api/trips/['\"]", response.content.decode()
    )


def test_login_page_renders_and_signs_in_with_csrf() -> None:
    make_user("docs-reader")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/api-auth/login/?next=/api/me/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert token

    wrong = client.post(
        "/api-auth/login/?next=/api/me/",
        {"username": "docs-reader", "password": "wrong", "csrfmiddlewaretoken": token.group(1)},
    )
    assert wrong.status_code == 200  # the form again, with the error
    assert client.get("/api/me/", HTTP_ACCEPT="application/json").status_code in (401, 403)

    signed_in = client.post(
        "/api-auth/login/?next=/api/me/",
        {
            "username": "docs-reader",
            "password": PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/api/me/",
        },
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == "/api/me/"
    me = client.get("/api/me/", HTTP_ACCEPT="application/json")
    assert me.status_code == 200 and me.json()["username"] == "docs-reader"

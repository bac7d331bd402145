"""scripts/audit.py (`make audit`, docs/audit.md): its verdict on recorded answers of the advisory
services, served from loopback (PyPI's JSON pages and npm's bulk advisory endpoint; we neither own
nor can run those services), and on the project's real pins when PyPI answers."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_audit() -> Any:
    spec = importlib.util.spec_from_file_location("tripsage_audit", ROOT / "scripts" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


audit = _load_audit()

needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")

# What pip-audit 2.10.1 wrote (-f json) on this machine on 2026-12-01, where PyPI answers 404 for
# each release's page: every pin skipped, and "No known vulnerabilities found" on its stderr.
PIP_AUDIT_ALL_SKIPPED = {
    "dependencies": [
        {
            "name": "example-lib",
            "skip_reason": "Dependency not found on PyPI and could not be audited: "
            "example-lib (1.0.0)",
        },
        {
            "name": "other-lib",
            "skip_reason": "Dependency not found on PyPI and could not be audited: "
            "other-lib (2.0.0)",
        },
    ],
    "fixes": [],
}

# An advisory as PyPI's JSON gives it (the `vulnerabilities` of a release's page).
PYSEC = {
    "id": "PYSEC-2026-1",
    "aliases": ["CVE-2026-0001", "GHSA-aaaa-bbbb-cccc"],
    "summary": "Request smuggling in example-lib",
    "details": "Long text.",
    "fixed_in": ["1.0.1"],
    "link": "https://osv.dev/vulnerability/PYSEC-2026-1",
    "source": "osv",
    "withdrawn": None,
}

# An advisory as npm's bulk endpoint gives it.
NPM_ADVISORY = {
    "id": 1100001,
    "url": "https://github.com/advisories/GHSA-pppp-qqqq-rrrr",
    "title": "Prototype pollution in left-pad",
    "severity": "high",
    "vulnerable_versions": "<1.4.0",
    "cwe": ["CWE-1321"],
    "cvss": {"score": 7.5, "vectorString": None},
}


class FakeServices:
    """PyPI's JSON pages and npm's bulk advisory endpoint, answering what a test recorded."""

    def __init__(self) -> None:
        self.pypi: dict[str, Any] = {}  # path -> JSON; any other path: 404
        self.npm_bulk: dict[str, Any] = {}
        self.requests: list[str] = []
        services = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                services.requests.append(f"GET {self.path}")
                if self.path in services.pypi:
                    self._answer(200, services.pypi[self.path])
                else:
                    self._answer(404)  # also npm's package documents: npm audit copes

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                services.requests.append(f"POST {self.path}")
                if self.path == "/-/npm/v1/security/advisories/bulk":
                    self._answer(200, services.npm_bulk)
                else:
                    self._answer(405)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def release(self, name: str, version: str, vulnerabilities: list[dict[str, Any]]) -> None:
        self.pypi[f"/pypi/{name}/{version}/json"] = {
            "info": {"name": name, "version": version},
            "vulnerabilities": vulnerabilities,
        }

    def project(self, name: str, latest: str, vulnerabilities: list[dict[str, Any]]) -> None:
        self.pypi[f"/pypi/{name}/json"] = {
            "info": {"name": name, "version": latest},
            "releases": {},
            "vulnerabilities": vulnerabilities,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def services() -> Iterator[FakeServices]:
    fake = FakeServices()
    yield fake
    fake.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two Python pins (one in an included file) and one npm dev dependency."""
    (tmp_path / "requirements.txt").write_text("# runtime\nexample-lib==1.0.0\n")
    (tmp_path / "requirements-dev.txt").write_text(
        "-r requirements.txt\nother_lib==2.0.0  # a comment\n"
    )
    js = tmp_path / "js"
    js.mkdir()
    (js / "package.json").write_text(
        json.dumps(
            {"name": "fixture", "version": "1.0.0", "devDependencies": {"left-pad": "1.3.0"}}
        )
    )
    lock = {
        "name": "fixture",
        "version": "1.0.0",
        "lockfileVersion": 3,
        "requires": True,
        "packages": {
            "": {"name": "fixture", "version": "1.0.0", "devDependencies": {"left-pad": "1.3.0"}},
            "node_modules/left-pad": {"version": "1.3.0", "dev": True},
        },
    }
    (js / "package-lock.json").write_text(json.dumps(lock))
    (tmp_path / "pip-audit.json").write_text(json.dumps(PIP_AUDIT_ALL_SKIPPED))
    return tmp_path


def _allow(project: Path, *entries: dict[str, str]) -> None:
    lines = []
    for entry in entries:
        lines.append("[[allow]]")
        lines += [f'{key} = "{value}"' for key, value in entry.items()]
        lines.append("reviewed = 2026-12-01")
    (project / "audit-allow.toml").write_text("\n".join(lines) + "\n")


def _run(project: Path, services_url: str, *extra: str, npm: bool = True) -> tuple[int, str]:
    args = [
        "--root",
        str(project),
        "--requirements",
        "requirements.txt",
        "requirements-dev.txt",
        "--pip-audit-report",
        str(project / "pip-audit.json"),
        "--pypi-url",
        services_url,
        "--npm-registry",
        f"{services_url}/",
        "--npm-project",
        "js" if npm else "",
        *extra,
    ]
    return _capture(args)


def _capture(args: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = audit.main(args)
    return status, out.getvalue()


def _clean_pypi(services: FakeServices) -> None:
    services.release("example-lib", "1.0.0", [])
    services.release("other-lib", "2.0.0", [])


@needs_npm
def test_clean_answers_exit_0_and_say_every_pin_was_audited(project, services):
    _clean_pypi(services)
    status, output = _run(project, services.url)
    assert status == 0, output
    assert "clean: 3 of 3 pinned packages audited; 0 advisories" in output
    assert "not audited" not in output
    assert "POST /-/npm/v1/security/advisories/bulk" in services.requests


def test_an_advisory_not_written_down_fails_and_is_listed(project, services):
    services.release("example-lib", "1.0.0", [PYSEC])
    services.release("other-lib", "2.0.0", [])
    status, output = _run(project, services.url, npm=False)
    assert status == 1, output
    assert (
        "ADVISORY not written down: pypi example-lib 1.0.0 PYSEC-2026-1 "
        "(CVE-2026-0001, GHSA-aaaa-bbbb-cccc): Request smuggling in example-lib; fixed in 1.0.1"
    ) in output
    assert (
        "FAILED: 2 of 2 pinned packages audited; 1 advisories: 0 allowed, 1 not written down"
        in (output)
    )


def test_a_withdrawn_advisory_is_not_reported(project, services):
    services.release("example-lib", "1.0.0", [{**PYSEC, "withdrawn": "2026-11-30T00:00:00Z"}])
    services.release("other-lib", "2.0.0", [])
    status, output = _run(project, services.url, npm=False)
    assert status == 0, output
    assert "PYSEC-2026-1" not in output


@needs_npm
def test_an_npm_advisory_not_written_down_fails(project, services):
    _clean_pypi(services)
    services.npm_bulk = {"left-pad": [NPM_ADVISORY]}
    status, output = _run(project, services.url)
    assert status == 1, output
    assert (
        "ADVISORY not written down: npm left-pad 1.3.0 GHSA-pppp-qqqq-rrrr (1100001): "
        "Prototype pollution in left-pad (high, affects <1.4.0)"
    ) in output


@needs_npm
def test_allowed_advisories_are_reported_as_allowed_with_their_reason(project, services):
    services.release("example-lib", "1.0.0", [PYSEC])
    services.release("other-lib", "2.0.0", [])
    services.npm_bulk = {"left-pad": [NPM_ADVISORY]}
    _allow(
        project,
        # An alias names the advisory as well as its id.
        {
            "ecosystem": "pypi",
            "id": "CVE-2026-0001",
            "package": "Example_Lib",
            "version": "1.0.0",
            "reason": "we never parse chunked bodies with it",
        },
        {
            "ecosystem": "npm",
            "id": "GHSA-pppp-qqqq-rrrr",
            "package": "left-pad",
            "version": "1.3.0",
            "reason": "a test tool's dependency, never shipped",
        },
    )
    status, output = _run(project, services.url)
    assert status == 0, output
    assert (
        "allowed: pypi example-lib 1.0.0 PYSEC-2026-1: we never parse chunked bodies with it "
        "(reviewed 2026-12-01)"
    ) in output
    assert "allowed: npm left-pad 1.3.0 GHSA-pppp-qqqq-rrrr: a test tool's dependency" in output
    assert "clean: 3 of 3 pinned packages audited; 2 advisories: 2 allowed, 0 not written down" in (
        output
    )


def test_an_allowance_for_another_version_does_not_cover_the_pin(project, services):
    services.release("example-lib", "1.0.0", [PYSEC])
    services.release("other-lib", "2.0.0", [])
    _allow(
        project,
        {
            "ecosystem": "pypi",
            "id": "PYSEC-2026-1",
            "package": "example-lib",
            "version": "0.9.0",
            "reason": "reviewed for the old pin",
        },
    )
    status, output = _run(project, services.url, npm=False)
    assert status == 1, output
    assert "ADVISORY not written down: pypi example-lib 1.0.0 PYSEC-2026-1" in output
    assert "STALE allowance: pypi example-lib 0.9.0 PYSEC-2026-1" in output


def test_a_stale_allowance_fails_even_when_everything_else_is_clean(project, services):
    _clean_pypi(services)
    _allow(
        project,
        {
            "ecosystem": "pypi",
            "id": "PYSEC-2025-9",
            "package": "gone-lib",
            "version": "0.1",
            "reason": "was a test dependency",
        },
    )
    status, output = _run(project, services.url, npm=False)
    assert status == 1, output
    assert (
        "STALE allowance: pypi gone-lib 0.1 PYSEC-2025-9 (that version is no longer pinned: "
        "remove it from audit-allow.toml)"
    ) in output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nothing listens


@needs_npm
def test_services_that_do_not_answer_exit_3_and_never_say_clean(project):
    url = f"http://127.0.0.1:{_closed_port()}"
    status, output = _run(project, url)
    assert status == 3, output
    host = url.removeprefix("http://")
    assert f"not audited: {host} did not answer (URLError: [Errno 111] Connection refused)" in (
        output
    )
    assert f"not audited: {host} did not answer (request to {url}/-/npm/v1/security/" in output
    assert "NOT AUDITED in part: 0 of 3 pinned packages audited" in output
    assert "clean" not in output
    assert "no known vulnerabilities" not in output.lower()
    assert "no vulnerabilities" not in output.lower()


@needs_npm
def test_not_audited_ok_exits_0_but_prints_the_same_lines(project):
    url = f"http://127.0.0.1:{_closed_port()}"
    status, output = _run(project, url, "--not-audited-ok")
    assert status == 0, output
    assert "not audited: " in output
    assert "NOT AUDITED in part: 0 of 3 pinned packages audited" in output
    assert "clean" not in output


def test_a_release_page_404_falls_back_to_the_project_page_only_for_its_latest_release(
    project, services
):
    """What PyPI does here: each release's page answers 404 (pip-audit then skips every pin and
    says "No known vulnerabilities found"); the project's page answers, and its vulnerabilities
    are its latest release's, so they are a pin's only when the pin is that release."""
    services.project("example-lib", "1.0.0", [PYSEC])
    services.project("other-lib", "3.0.0", [])
    status, output = _run(project, services.url, npm=False)
    assert status == 1, output
    assert "ADVISORY not written down: pypi example-lib 1.0.0 PYSEC-2026-1" in output
    host = services.url.removeprefix("http://")
    assert (
        f"not audited: {host} did not answer for other_lib 2.0.0 (HTTP 404 on "
        "/pypi/other-lib/2.0.0/json; not the latest release (3.0.0))"
    ) in output
    assert "pip-audit: 0 of 2 pins audited, 2 skipped" in output
    assert "no known vulnerabilities" not in output.lower()

    # Written down, the advisory no longer fails the run, but the unaudited pin still shows.
    _allow(
        project,
        {
            "ecosystem": "pypi",
            "id": "PYSEC-2026-1",
            "package": "example-lib",
            "version": "1.0.0",
            "reason": "not reachable from our code",
        },
    )
    status, output = _run(project, services.url, npm=False)
    assert status == 3, output
    assert "NOT AUDITED in part: 1 of 2 pinned packages audited" in output


def test_pins_pip_audit_audited_are_not_asked_again_and_its_advisories_count(project, services):
    (project / "pip-audit.json").write_text(
        json.dumps(
            {
                "dependencies": [
                    {
                        "name": "example-lib",
                        "version": "1.0.0",
                        "vulns": [
                            {
                                "id": "PYSEC-2026-1",
                                "fix_versions": ["1.0.1"],
                                "aliases": ["CVE-2026-0001"],
                                "description": "Request smuggling in example-lib",
                            }
                        ],
                    },
                    {"name": "other-lib", "version": "2.0.0", "vulns": []},
                ],
                "fixes": [],
            }
        )
    )
    status, output = _run(project, services.url, npm=False)
    assert status == 1, output
    assert (
        "ADVISORY not written down: pypi example-lib 1.0.0 PYSEC-2026-1 (CVE-2026-0001): "
        "Request smuggling in example-lib; fixed in 1.0.1"
    ) in output
    assert "pip-audit: 2 of 2 pins audited" in output
    assert services.requests == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[allow]]\nid = 'X'\n",
            "allowance 1 lacks ecosystem, package, version, reason, reviewed",
        ),
        (
            "[[allow]]\necosystem='pypi'\nid='X'\npackage='a'\nversion='1'\nreason='r'\n"
            "reviewed='yesterday'\n",
            "reviewed is a date",
        ),
        ("allow = [\n", "audit-allow.toml: "),
    ],
)
def test_an_unreadable_allow_list_exits_2(project, services, text, message):
    (project / "audit-allow.toml").write_text(text)
    status, output = _run(project, services.url, npm=False)
    assert status == 2, output
    assert "the allow-list cannot be read" in output and message in output
    assert services.requests == []  # nothing is audited against a list that cannot be read


# -- the project's own files -----------------------------------------------------------------


def _project_allowances() -> list[dict[str, Any]]:
    return list(tomllib.loads((ROOT / "audit-allow.toml").read_text()).get("allow", []))


def test_the_projects_allowances_name_pinned_versions():
    allowances = audit.read_allow_list(ROOT / "audit-allow.toml")
    assert len(allowances) == len(_project_allowances())
    pins, unpinned = audit.read_requirements(ROOT / name for name in audit.REQUIREMENTS)
    pinned = {pin.key for pin in pins}
    pinned |= {pin.key for pin in audit.read_package_lock(ROOT / "clients/js/package-lock.json")}
    assert unpinned == []
    for allowance in allowances:
        assert allowance.key in pinned, allowance
    assert any(pin.key[1] == "pip-audit" for pin in pins)  # pip-audit is pinned (dev)


def _pypi_answers() -> str | None:
    try:
        with urllib.request.urlopen("https://pypi.org/pypi/pip-audit/json", timeout=5) as reply:
            json.load(reply)
    except Exception as error:
        return f"PyPI does not answer here ({error})"
    return None


def test_the_real_audit_finds_nothing_unwritten_when_pypi_answers():
    """`make audit` itself: the project's pins against PyPI and npm's registry."""
    reason = _pypi_answers()
    if reason is not None:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit.py")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    # 0: clean; 3: part not audited (a service did not answer), said in "not audited" lines.
    assert result.returncode in (0, 3), output
    assert "ADVISORY not written down" not in output and "STALE" not in output
    if result.returncode == 3:
        assert "not audited: " in output and "clean" not in output
    else:
        assert "clean: " in output and "not audited" not in output


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_audit_runs_the_script_and_ci_runs_it_between_lint_and_the_suite():
    dry = subprocess.run(
        ["make", "-n", "audit", "ARGS=--not-audited-ok"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert "python scripts/audit.py --not-audited-ok" in dry.stdout
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    audit_line = ci.index("make audit ARGS=--not-audited-ok")
    assert ci.index("make lint") < audit_line < ci.index("make test COVERAGE=1")


def test_a_missing_lockfile_exits_2_without_auditing(project, services):
    (project / "js" / "package-lock.json").unlink()
    status, output = _run(project, services.url)
    assert status == 2, output
    assert "audit: js/package-lock.json does not exist" in output
    assert "clean" not in output
    assert services.requests == []  # checked before anything is asked


def test_a_requirement_that_pins_no_version_is_reported_not_audited(project, services):
    _clean_pypi(services)
    with (project / "requirements-dev.txt").open("a") as requirements:
        requirements.write("--index-url https://example.invalid/simple\nloose-lib>=1.0\n")
    status, output = _run(project, services.url, npm=False)
    assert status == 3, output
    assert "not audited: requirements-dev.txt: loose-lib>=1.0 pins no version" in output
    assert "NOT AUDITED in part: 2 of 2 pinned packages audited" in output

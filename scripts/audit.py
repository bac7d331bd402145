"""`make audit`: known advisories in the pinned dependencies (docs/audit.md).

Python: pip-audit over the requirements files with PyPI's advisory service (`-s pypi`), then,
for each pin pip-audit could not audit, PyPI's JSON itself: the release's page
(/pypi/NAME/VERSION/json) and, when the pin is its project's latest release, the project's page
(/pypi/NAME/json), whose `vulnerabilities` are the latest release's. JavaScript: `npm audit`
over clients/js/package-lock.json, development dependencies included.

Each advisory found is either written down in audit-allow.toml (reported as allowed, with its
reason) or reported as not written down. Exit status:

0  every pin audited, no advisory outside the allow-list, no stale allowance;
1  advisories not written down, or allowances for versions no longer pinned (stale);
2  the allow-list, a requirements file or the lockfile cannot be read;
3  part of the pins not audited: an advisory service did not answer ("not audited: ..."), and
   nothing under 1. Never reported as clean. `--not-audited-ok` (CI) exits 0 instead, after
   printing the same lines.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt", "requirements-bench.txt")
ALLOW_LIST = "audit-allow.toml"
NPM_PROJECT = "clients/js"
PYPI_URL = "https://pypi.org"
NPM_REGISTRY = "https://registry.npmjs.org/"
TIMEOUT = 10.0  # seconds, for each request to an advisory service

EXIT_CLEAN = 0
EXIT_ADVISORIES = 1
EXIT_UNREADABLE = 2
EXIT_NOT_AUDITED = 3

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """PEP 503's normalized name: `Django` and `django`, `channels_redis` and `channels-redis`."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    ecosystem: str  # "pypi" or "npm"
    name: str
    version: str

    @property
    def key(self) -> tuple[str, str, str]:
        name = canonical(self.name) if self.ecosystem == "pypi" else self.name
        return (self.ecosystem, name, self.version)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Advisory:
    pin: Pin
    id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    fixed_in: tuple[str, ...] = ()

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}


@dataclass(frozen=True)
class Allowance:
    ecosystem: str
    id: str
    package: str
    version: str
    reason: str
    reviewed: datetime.date

    @property
    def key(self) -> tuple[str, str, str]:
        return Pin(self.ecosystem, self.package, self.version).key

    def covers(self, advisory: Advisory) -> bool:
        return self.key == advisory.pin.key and self.id in advisory.ids


@dataclass
class Audit:
    """What one ecosystem's audit found: the pins, those audited, advisories, what failed."""

    name: str
    pins: list[Pin]
    audited: set[tuple[str, str, str]] = field(default_factory=set)
    advisories: list[Advisory] = field(default_factory=list)
    not_audited: list[str] = field(default_factory=list)  # "not audited: ..." lines
    notes: list[str] = field(default_factory=list)


class AllowListError(Exception):
    pass


# -- pins --------------------------------------------------------------------------------------


def read_requirements(paths: Iterable[Path]) -> tuple[list[Pin], list[str]]:
    """The `name==version` pins of the files and of those they include (`-r`), each once, and the
    requirement lines that pin nothing (which cannot be audited)."""
    pins: dict[tuple[str, str, str], Pin] = {}
    unpinned: list[str] = []
    seen: set[Path] = set()

    def read(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        for raw in path.read_text().splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("-r ", "--requirement ")):
                read(path.parent / line.split(None, 1)[1])
                continue
            if line.startswith("-") and not line.startswith(("-e ", "--editable ")):
                continue  # an option (--index-url, -c ...), not a requirement
            match = _PIN.match(line)
            if match is None:
                unpinned.append(f"{path.name}: {line}")
                continue
            pin = Pin("pypi", match[1], match[3])
            pins.setdefault(pin.key, pin)

    for path in paths:
        read(path)
    return list(pins.values()), unpinned


def read_package_lock(path: Path) -> list[Pin]:
    """Every package of an npm lockfile (v2/v3 `packages`), development dependencies included."""
    lock = json.loads(path.read_text())
    pins: dict[tuple[str, str, str], Pin] = {}
    for location, entry in lock.get("packages", {}).items():
        if not location or entry.get("link") or "version" not in entry:
            continue  # the project itself, or a link to a folder
        name = entry.get("name") or location.rsplit("node_modules/", 1)[-1]
        pin = Pin("npm", name, entry["version"])
        pins.setdefault(pin.key, pin)
    return list(pins.values())


# -- the allow-list ----------------------------------------------------------------------------


def read_allow_list(path: Path) -> list[Allowance]:
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise AllowListError(f"{path.name}: {error}") from error
    allowances = []
    for number, entry in enumerate(data.get("allow", []), start=1):
        missing = [
            key
            for key in ("ecosystem", "id", "package", "version", "reason", "reviewed")
            if key not in entry
        ]
        if missing:
            raise AllowListError(f"{path.name}: allowance {number} lacks {', '.join(missing)}")
        if entry["ecosystem"] not in ("pypi", "npm"):
            raise AllowListError(f"{path.name}: allowance {number}: ecosystem is pypi or npm")
        if not isinstance(entry["reviewed"], datetime.date):
            raise AllowListError(
                f"{path.name}: allowance {number}: reviewed is a date (2026-12-01)"
            )
        if not str(entry["reason"]).strip():
            raise AllowListError(f"{path.name}: allowance {number}: the reason is empty")
        allowances.append(
            Allowance(
                ecosystem=entry["ecosystem"],
                id=str(entry["id"]),
                package=str(entry["package"]),
                version=str(entry["version"]),
                reason=str(entry["reason"]).strip(),
                reviewed=entry["reviewed"],
            )
        )
    unknown = set(data) - {"allow"}
    if unknown:
        raise AllowListError(f"{path.name}: unknown keys {', '.join(sorted(unknown))}")
    return allowances


# -- PyPI --------------------------------------------------------------------------------------


class NoAnswer(Exception):
    """The service did not answer, or answered something that is not an answer."""


def get_json(url: str, *, timeout: float = TIMEOUT) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise NoAnswer(f"HTTP {error.code} on {urllib.parse.urlsplit(url).path}") from error
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise NoAnswer(f"{type(error).__name__}: {reason}") from error
    except ValueError as error:
        raise NoAnswer(f"not JSON: {error}") from error


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _pypi_advisories(pin: Pin, vulnerabilities: Iterable[dict[str, Any]]) -> list[Advisory]:
    """PyPI's `vulnerabilities` (OSV records), withdrawn ones left out as pip-audit does."""
    return [
        Advisory(
            pin=pin,
            id=str(vuln["id"]),
            aliases=tuple(vuln.get("aliases") or ()),
            summary=_first_line(vuln.get("summary") or vuln.get("details")),
            fixed_in=tuple(vuln.get("fixed_in") or ()),
        )
        for vuln in vulnerabilities
        if not vuln.get("withdrawn")
    ]


def query_pypi(pin: Pin, base_url: str) -> tuple[list[Advisory] | None, str]:
    """The pin's advisories from PyPI's JSON, or None and why it could not be audited.

    The release's page first (what pip-audit asks); if it does not answer, the project's page,
    whose `vulnerabilities` are those of its latest release: they are the pin's only when the
    pin is that release."""
    name = canonical(pin.name)
    try:
        data = get_json(f"{base_url}/pypi/{name}/{pin.version}/json")
        return _pypi_advisories(pin, data.get("vulnerabilities") or []), "release page"
    except NoAnswer as error:
        release_error = str(error)
    try:
        data = get_json(f"{base_url}/pypi/{name}/json")
    except NoAnswer as error:
        return None, f"{release_error}; {error}"
    latest = str(data.get("info", {}).get("version", ""))
    if "vulnerabilities" not in data:
        return None, f"{release_error}; the project page lists no vulnerabilities"
    if latest != pin.version:
        return None, f"{release_error}; not the latest release ({latest})"
    return _pypi_advisories(pin, data["vulnerabilities"]), "project page"


@dataclass
class PipAuditReport:
    """pip-audit's JSON report, or why there is none."""

    dependencies: list[dict[str, Any]] | None
    error: str = ""


def run_pip_audit(requirements: Sequence[Path], timeout: float = TIMEOUT) -> PipAuditReport:
    executable = Path(sys.executable).with_name("pip-audit")
    command = [str(executable)] if executable.exists() else None
    if command is None and shutil.which("pip-audit"):
        command = [str(shutil.which("pip-audit"))]
    if command is None:
        return PipAuditReport(None, "pip-audit is not installed (make install)")
    with tempfile.TemporaryDirectory(prefix="audit-") as workdir:
        output = Path(workdir) / "pip-audit.json"
        args = [*command, "-s", "pypi", "--no-deps", "--disable-pip", "--progress-spinner=off"]
        args += ["--timeout", str(int(timeout)), "-f", "json", "-o", str(output)]
        for path in requirements:
            args += ["-r", str(path)]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return PipAuditReport(None, "pip-audit did not finish in 120 s")
        if not output.exists():
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            return PipAuditReport(None, lines[-1] if lines else f"exit {result.returncode}")
        return read_pip_audit_report(output.read_text())


def read_pip_audit_report(text: str) -> PipAuditReport:
    try:
        data = json.loads(text)
        dependencies = data["dependencies"]
    except (ValueError, KeyError, TypeError) as error:
        return PipAuditReport(None, f"pip-audit's report is unreadable ({error})")
    return PipAuditReport(list(dependencies))


def audit_pypi(
    pins: list[Pin],
    unpinned: list[str],
    report: PipAuditReport,
    *,
    base_url: str,
) -> Audit:
    """The Python pins' audit: pip-audit's report first, PyPI's JSON for the pins it left."""
    audit = Audit("PyPI", pins)
    by_key = {pin.key: pin for pin in pins}
    todo: dict[tuple[str, str, str], Pin] = dict(by_key)
    if report.dependencies is None:
        audit.notes.append(f"pip-audit: no report ({report.error}); asking PyPI directly")
    else:
        skipped = 0
        for dep in report.dependencies:
            if "skip_reason" in dep or "version" not in dep:
                skipped += 1
                continue
            key = Pin("pypi", dep["name"], dep["version"]).key
            pin = by_key.get(key)
            if pin is None:
                continue
            todo.pop(key, None)
            audit.audited.add(key)
            for vuln in dep.get("vulns", []):
                audit.advisories.append(
                    Advisory(
                        pin=pin,
                        id=str(vuln["id"]),
                        aliases=tuple(vuln.get("aliases") or ()),
                        summary=_first_line(vuln.get("description")),
                        fixed_in=tuple(vuln.get("fix_versions") or ()),
                    )
                )
        audit.notes.append(
            f"pip-audit: {len(audit.audited)} of {len(pins)} pins audited"
            + (
                f", {skipped} skipped (PyPI did not answer for them); asking PyPI directly"
                if skipped
                else ""
            )
        )
    if todo:
        _audit_directly(audit, list(todo.values()), base_url)
    for line in unpinned:
        audit.not_audited.append(f"not audited: {line} pins no version")
    return audit


def _audit_directly(audit: Audit, pins: list[Pin], base_url: str) -> None:
    host = urllib.parse.urlsplit(base_url).netloc
    # One request first: a service that does not answer costs one timeout, not one per pin.
    first, rest = pins[0], pins[1:]
    answers: list[tuple[Pin, list[Advisory] | None, str]] = []
    try:
        get_json(f"{base_url}/pypi/{canonical(first.name)}/json")
    except NoAnswer as error:
        if "HTTP 404" not in str(error):
            audit.not_audited.append(
                f"not audited: {host} did not answer ({error}): {len(pins)} PyPI pins"
            )
            return
    with ThreadPoolExecutor(max_workers=8) as pool:
        for pin, (advisories, how) in zip(
            [first, *rest],
            pool.map(lambda pin: query_pypi(pin, base_url), [first, *rest]),
            strict=True,
        ):
            answers.append((pin, advisories, how))
    direct = [pin for pin, advisories, _ in answers if advisories is not None]
    missed = [(pin, how) for pin, advisories, how in answers if advisories is None]
    for pin, advisories, _ in answers:
        if advisories is not None:
            audit.audited.add(pin.key)
            audit.advisories.extend(advisories)
    audit.notes.append(f"PyPI's JSON: {len(direct)} of {len(pins)} pins audited")
    for pin, why in missed:
        audit.not_audited.append(f"not audited: {host} did not answer for {pin} ({why})")


# -- npm ---------------------------------------------------------------------------------------


def run_npm_audit(project: Path, registry: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """`npm audit --json` over the lockfile alone; its JSON, or {"error": why}."""
    npm = shutil.which("npm")
    if npm is None:
        return {"error": "npm is not installed"}
    args = [npm, "audit", "--json", "--package-lock-only", "--include=dev", "--audit-level=info"]
    args += [f"--registry={registry}", f"--fetch-timeout={int(timeout * 1000)}"]
    args += ["--fetch-retries=0"]
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    try:
        result = subprocess.run(
            args, cwd=project, capture_output=True, text=True, timeout=120, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": "npm audit did not finish in 120 s"}
    try:
        data = json.loads(result.stdout)
    except ValueError:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"npm audit exited {result.returncode}"}
    if not isinstance(data, dict):
        return {"error": "npm audit printed no report"}
    return data


def audit_npm(
    pins: list[Pin], report: dict[str, Any], *, registry: str, lock: Path, label: str
) -> Audit:
    """npm audit's report over the lockfile `lock` (shown as `label`)."""
    audit = Audit("npm", pins)
    host = urllib.parse.urlsplit(registry).netloc or registry
    if "error" in report or "vulnerabilities" not in report:
        error = report.get("error")
        why = report.get("message") or (error.get("summary") if isinstance(error, dict) else error)
        audit.not_audited.append(
            f"not audited: {host} did not answer ({why or 'no report'}): "
            f"{len(pins)} npm packages of {label}"
        )
        return audit
    versions: dict[str, str] = {}
    lock_data = json.loads(lock.read_text())
    for location, entry in lock_data.get("packages", {}).items():
        if location and "version" in entry:
            versions[location] = entry["version"]
    seen: set[tuple[str, str, str]] = set()
    for name, entry in report["vulnerabilities"].items():
        installed = sorted({versions[node] for node in entry.get("nodes", []) if node in versions})
        for via in entry.get("via", []):
            if not isinstance(via, dict):
                continue  # affected through another package, which is listed itself
            url = str(via.get("url") or "")
            ident = url.rstrip("/").rsplit("/", 1)[-1] if "/advisories/" in url else ""
            ident = ident or str(via.get("source"))
            for version in installed or ["?"]:
                if (name, version, ident) in seen:
                    continue
                seen.add((name, version, ident))
                audit.advisories.append(
                    Advisory(
                        pin=Pin("npm", name, version),
                        id=ident,
                        aliases=(str(via.get("source")),),
                        summary=f"{via.get('title', '')} ({via.get('severity', '?')}, "
                        f"affects {via.get('range', '?')})",
                    )
                )
    audit.audited = {pin.key for pin in pins}
    return audit


# -- the report --------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    lines: list[str]


def judge(audits: list[Audit], allowances: list[Allowance], *, not_audited_ok: bool) -> Outcome:
    lines: list[str] = []
    pinned = {pin.key for audit in audits for pin in audit.pins}
    not_written: list[Advisory] = []
    allowed: list[tuple[Advisory, Allowance]] = []
    for audit in audits:
        lines.append(f"{audit.name}: {len(audit.pins)} pinned packages")
        lines.extend(f"  {note}" for note in audit.notes)
        for advisory in audit.advisories:
            allowance = next((a for a in allowances if a.covers(advisory)), None)
            if allowance is None:
                not_written.append(advisory)
            else:
                allowed.append((advisory, allowance))
    stale = [a for a in allowances if a.key not in pinned]
    for advisory, allowance in allowed:
        lines.append(
            f"allowed: {advisory.pin.ecosystem} {advisory.pin} {advisory.id}: {allowance.reason}"
            f" (reviewed {allowance.reviewed.isoformat()})"
        )
    for advisory in not_written:
        fixed = f"; fixed in {', '.join(advisory.fixed_in)}" if advisory.fixed_in else ""
        aliases = sorted(set(advisory.aliases) - {advisory.id})
        alias_text = f" ({', '.join(aliases)})" if aliases else ""
        lines.append(
            f"ADVISORY not written down: {advisory.pin.ecosystem} {advisory.pin} "
            f"{advisory.id}{alias_text}: {advisory.summary}{fixed}"
        )
    for allowance in stale:
        lines.append(
            f"STALE allowance: {allowance.ecosystem} {allowance.package} {allowance.version} "
            f"{allowance.id} (that version is no longer pinned: remove it from {ALLOW_LIST})"
        )
    missing = [line for audit in audits for line in audit.not_audited]
    lines.extend(missing)
    audited = sum(len(audit.audited) for audit in audits)
    counts = (
        f"{audited} of {len(pinned)} pinned packages audited; "
        f"{len(allowed) + len(not_written)} advisories: {len(allowed)} allowed, "
        f"{len(not_written)} not written down; {len(stale)} stale allowances"
    )
    if not_written or stale:
        lines.append(f"FAILED: {counts}")
        return Outcome(EXIT_ADVISORIES, lines)
    if missing:
        lines.append(
            f"NOT AUDITED in part: {counts}; {len(missing)} 'not audited' lines above"
            + (" (--not-audited-ok: exit 0)" if not_audited_ok else "")
        )
        return Outcome(EXIT_CLEAN if not_audited_ok else EXIT_NOT_AUDITED, lines)
    lines.append(f"clean: {counts}")
    return Outcome(EXIT_CLEAN, lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this one)")
    parser.add_argument("--requirements", nargs="*", default=list(REQUIREMENTS))
    parser.add_argument("--npm-project", default=NPM_PROJECT, help="'' to leave npm out")
    parser.add_argument("--allow-list", default=ALLOW_LIST)
    parser.add_argument("--pypi-url", default=os.environ.get("AUDIT_PYPI_URL", PYPI_URL))
    parser.add_argument(
        "--npm-registry", default=os.environ.get("AUDIT_NPM_REGISTRY", NPM_REGISTRY)
    )
    parser.add_argument(
        "--pip-audit-report",
        type=Path,
        help="read this pip-audit JSON report (-f json) instead of running pip-audit",
    )
    parser.add_argument(
        "--not-audited-ok",
        action="store_true",
        help="exit 0, not 3, when a service did not answer (CI); the lines are printed the same",
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()

    try:
        allowances = read_allow_list(root / args.allow_list)
    except AllowListError as error:
        print(f"audit: the allow-list cannot be read: {error}", file=sys.stderr)
        return EXIT_UNREADABLE

    requirement_paths = [root / name for name in args.requirements]
    lock = Path(args.npm_project) / "package-lock.json" if args.npm_project else None
    for path in [*requirement_paths, *([root / lock] if lock else [])]:
        if not path.exists():
            print(f"audit: {path.relative_to(root)} does not exist", file=sys.stderr)
            return EXIT_UNREADABLE

    audits: list[Audit] = []
    if requirement_paths:
        pins, unpinned = read_requirements(requirement_paths)
        if args.pip_audit_report is not None:
            report = read_pip_audit_report(args.pip_audit_report.read_text())
        else:
            report = run_pip_audit(requirement_paths)
        audits.append(audit_pypi(pins, unpinned, report, base_url=args.pypi_url.rstrip("/")))
    if lock is not None:
        npm_report = run_npm_audit(root / args.npm_project, args.npm_registry)
        audits.append(
            audit_npm(
                read_package_lock(root / lock),
                npm_report,
                registry=args.npm_registry,
                lock=root / lock,
                label=str(lock),
            )
        )

    outcome = judge(audits, allowances, not_audited_ok=args.not_audited_ok)
    print("\n".join(outcome.lines))
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())

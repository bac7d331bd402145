"""The service behind Debian's PgBouncer in transaction mode: a daphne process whose DATABASE_URL
points at PgBouncer (DATABASE_PGBOUNCER=true), driven by real sockets and REST, and migrate.
PgBouncer checks the password here (md5 against its auth file), so DATABASE_PASSWORD with URL
syntax in it is checked for real too; PostgreSQL behind it trusts loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from psycopg import sql

from collaboration.models import Trip
from tests import factories
from tests.chaos.views import update
from tests.conftest import DaphneServer
from tests.wsclient import connect, recv_until, send_json

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
PGBOUNCER = "/usr/sbin/pgbouncer"
PASSWORD = "p@ss:/#%word"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Bouncer:
    def __init__(self, port: int, role: str, database: str, process: subprocess.Popen[bytes]):
        self.port, self.role, self.database, self.process = port, role, database, process

    def url(self) -> str:
        """A DATABASE_URL with no password in it: DATABASE_PASSWORD gives it."""
        return f"postgres://{self.role}@127.0.0.1:{self.port}/{self.database}"


def _admin() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        user=db["USER"] or "postgres",
        dbname="postgres",
        autocommit=True,
    )


@pytest.fixture(scope="module")
def bouncer(django_db_setup: None, django_db_blocker: object) -> Iterator[Bouncer]:
    """PgBouncer (pool_mode=transaction) on a free port in front of the test database, for a
    role of this module's own whose password has @ : / # % in it; dropped afterwards."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        if connection.vendor != "postgresql":
            pytest.fail("PgBouncer tests need DATABASE_URL=postgres://...", pytrace=False)
        database = connection.settings_dict["NAME"]
    if not os.path.exists(PGBOUNCER):
        pytest.fail(f"{PGBOUNCER} is missing: apt-get install pgbouncer", pytrace=False)
    role = f"settings_pgb_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        # A superuser so that migrate may run as it; a throwaway role on a test server.
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(PASSWORD)
            )
        )
    workdir = Path(tempfile.mkdtemp(prefix="tripsage-pgbouncer-"))
    workdir.chmod(0o755)  # PgBouncer will not run as root: it reads its files as postgres
    port = _free_port()
    (workdir / "userlist.txt").write_text(f'"{role}" "{PASSWORD}"\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host=127.0.0.1 port=5432 dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = md5
auth_file = {workdir}/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 5
server_reset_query =
"""
    )
    for name in ("userlist.txt", "pgbouncer.ini"):
        (workdir / name).chmod(0o644)
    log = (workdir / "pgbouncer.log").open("wb")
    process = subprocess.Popen(
        [PGBOUNCER, "-u", "postgres", str(workdir / "pgbouncer.ini")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bouncer = Bouncer(port, role, database, process)
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg.connect(bouncer.url().replace("postgres://", "postgresql://"),
                            password=PASSWORD, connect_timeout=2).close()  # fmt: skip
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(
                    f"pgbouncer did not answer:\n{(workdir / 'pgbouncer.log').read_text()}",
                    pytrace=False,
                )
            time.sleep(0.2)
    yield bouncer
    process.terminate()
    process.wait(timeout=10)
    log.close()
    with _admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def bounced(bouncer: Bouncer, module_daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """A daphne whose every database connection goes through PgBouncer."""
    return module_daphne_factory(
        "pgbouncer",
        DATABASE_URL=bouncer.url(),
        DATABASE_PASSWORD=PASSWORD,
        DATABASE_PGBOUNCER="true",
    )


def _manage(bouncer: Bouncer, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tripsage.settings.test",
        DATABASE_URL=bouncer.url(),
        DATABASE_PASSWORD=password,
        DATABASE_PGBOUNCER="true",
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_migrate_runs_through_pgbouncer(bouncer: Bouncer) -> None:
    result = _manage(bouncer, "migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    assert "No migrations to apply" in result.stdout
    result = _manage(bouncer, "showmigrations", "collaboration")
    assert result.returncode == 0, result.stderr
    assert "[X] 0001_initial" in result.stdout and "[ ]" not in result.stdout


def test_a_wrong_password_is_refused_by_pgbouncer(bouncer: Bouncer) -> None:
    result = _manage(bouncer, "migrate", "--noinput", password="p@ss:/#%wrong")
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr


def is_type(type_: str, **fields: object) -> Callable[[dict], bool]:
    return lambda m: m["type"] == type_ and all(m.get(k) == v for k, v in fields.items())


def _http(method: str, url: str, body: dict | None = None, token: str = "") -> dict:
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body else None
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=15) as response:
        return json.loads(response.read())


async def test_edits_a_conflict_chat_and_rest_behind_pgbouncer_in_transaction_mode(
    bounced: DaphneServer,
) -> None:
    alice, bob, _carol, trip = await sync_to_async(factories.make_crew)()
    a, _ = await connect(bounced.ws_url, f"/ws/trips/{trip.pk}/",
                                await sync_to_async(factories.access_token)(alice))  # fmt: skip
    b, _ = await connect(bounced.ws_url, f"/ws/trips/{trip.pk}/",
                         await sync_to_async(factories.access_token)(bob))  # fmt: skip
    version = a.snapshot["trip"]["version"]

    # An edit: acknowledged to its sender, seen by the other editor.
    await send_json(a, update("name", "Porto by train", version, "a-name"))
    ack = await recv_until(a, is_type("ack", request_id="a-name"))
    assert ack["status"] == "applied"
    await recv_until(b, is_type("trip.updated", field="name"))

    # A conflict: both edit the budget from the same version; one applies, one conflicts.
    base = ack["version"]
    await send_json(a, update("budget", "2000", base, "a-budget"))
    await send_json(b, update("budget", "2500", base, "b-budget"))
    acks = [
        await recv_until(a, is_type("ack", request_id="a-budget")),
        await recv_until(b, is_type("ack", request_id="b-budget")),
    ]
    assert sorted(ack["status"] for ack in acks) == ["applied", "conflict"]
    for ws in (a, b):
        await recv_until(ws, is_type("conflict.detected"))

    # Chat: a message posted by one reaches the other.
    ca, _ = await connect(bounced.ws_url, f"/ws/chat/{trip.pk}/",
                          await sync_to_async(factories.access_token)(alice))  # fmt: skip
    cb, _ = await connect(bounced.ws_url, f"/ws/chat/{trip.pk}/",
                          await sync_to_async(factories.access_token)(bob))  # fmt: skip
    await send_json(ca, {"type": "chat.send", "id": "c-1", "text": "through the bouncer"})
    assert (await recv_until(ca, is_type("ack", request_id="c-1")))["status"] == "posted"
    message = await recv_until(cb, is_type("chat.message"))
    assert message["message"]["text"] == "through the bouncer"

    # REST: sign in with a password (a database read through PgBouncer), read the trip.
    tokens = await sync_to_async(_http)(
        "POST", f"{bounced.http_url}/api/auth/token/",
        {"username": "alice", "password": factories.PASSWORD},
    )  # fmt: skip
    detail = await sync_to_async(_http)(
        "GET", f"{bounced.http_url}/api/trips/{trip.pk}/", token=tokens["access"]
    )
    assert detail["fields"]["name"] == "Porto by train"
    applied = next(ack for ack in acks if ack["status"] == "applied")
    assert detail["fields"]["budget"] == ("2000" if applied is acks[0] else "2500")
    stored = await sync_to_async(Trip.objects.get)(pk=trip.pk)
    assert stored.name == "Porto by train"
    for ws in (a, b, ca, cb):
        await ws.close()

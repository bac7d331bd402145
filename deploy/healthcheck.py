"""The web container's health check (docker-compose.yml): GET /healthz on this container's
daphne, as the public host (PUBLIC_URL), so ALLOWED_HOSTS accepts it. Exit 0 when it answers 200.

    python -m deploy.healthcheck [port]
"""

from __future__ import annotations

import http.client
import os
import sys
from urllib.parse import urlsplit


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else 8000
    host = urlsplit(os.environ.get("PUBLIC_URL", "")).netloc or "localhost"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers={"Host": host})
        status = connection.getresponse().status
    except OSError as exc:
        print(f"/healthz on port {port}: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.close()
    if status != 200:
        print(f"/healthz on port {port} answered {status} (Host: {host})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

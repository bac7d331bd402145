"""App config for metrics: counts what lower packages only signal (events.broadcast)."""

from typing import Any

from django.apps import AppConfig

from events.broadcast import publish_failed
from events.groups import connection_type_of
from metrics import instruments


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self) -> None:
        publish_failed.connect(count_publish_failure, dispatch_uid="metrics.publish_failed")


def count_publish_failure(sender: Any, group: str, **kwargs: Any) -> None:
    """tripsage_publish_failures_total, by the connection type whose sockets missed it."""
    instruments.PUBLISH_FAILURES.labels(connection_type_of(group) or "other").inc()

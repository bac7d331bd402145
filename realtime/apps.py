"""App config: connects the signal that closes a deactivated user's sockets."""

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from realtime import signals  # noqa: F401

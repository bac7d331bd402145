"""App config for agents."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"

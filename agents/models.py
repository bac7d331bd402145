"""An AI agent's run for a user: state, progress and the step it is on."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models

# Bounds the services check before saving (agents.services), so a long value is refused with a
# precise error rather than cut or failed by the database.
AGENT_MAX_LENGTH = 100
STEP_MAX_LENGTH = 200


class AgentRun(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs"
    )
    # A run may work for a trip; its members see it. The run outlives the trip (it is the owner's).
    trip = models.ForeignKey(
        "collaboration.Trip",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agent_runs",
    )
    agent = models.CharField(max_length=AGENT_MAX_LENGTH)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    step = models.CharField(max_length=STEP_MAX_LENGTH, blank=True)
    message = models.TextField(blank=True)
    # Bumped by every change: a socket that hears of a run twice (through its owner's group and
    # its trip's) or out of order keeps the highest version.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "state"], name="agent_run_owner_state")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__lte=100), name="agent_run_progress_at_most_100"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent} #{self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in TERMINAL_STATES


# A run in one of these never changes again.
TERMINAL_STATES = frozenset(
    {AgentRun.State.SUCCEEDED, AgentRun.State.FAILED, AgentRun.State.CANCELLED}
)

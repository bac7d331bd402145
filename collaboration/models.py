"""Trips, members, the durable per-trip event log, client mutations and conflicts."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class Trip(models.Model):
    name = models.CharField(max_length=200)
    destination = models.CharField(max_length=200, blank=True)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    budget = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0"), validators=[MinValueValidator(0)]
    )
    currency = models.CharField(max_length=3, default="EUR")
    notes = models.TextField(blank=True)
    # Bumped by every change of an editable field; the base of optimistic concurrency.
    version = models.PositiveBigIntegerField(default=1)
    # field name -> the trip version at which that field last changed.
    field_versions = models.JSONField(default=dict, blank=True)
    # field name -> [id of the user who last changed it, the last version at which anyone else
    # changed it]: enough to tell "changed after v by someone other than me" without reading
    # the log (services.conflicts.changed_by_others_since).
    field_editors = models.JSONField(default=dict, blank=True)
    # The last event's sequence number, and the highest one pruned from the log.
    seq = models.PositiveBigIntegerField(default=0)
    log_floor = models.PositiveBigIntegerField(default=0)
    # Kept by the services under the trip's row lock, so a connect skips the conflicts query
    # when there are none (most of the time).
    open_conflicts = models.PositiveIntegerField(default=0)
    # The trip chat's last sequence number (its own stream, beside the edit log's `seq`).
    chat_seq = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="created_trips"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.name


class TripMember(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        EDITOR = "editor"
        VIEWER = "viewer"

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trip_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trip", "user"], name="unique_trip_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) on {self.trip}"


class TripEvent(models.Model):
    """The durable log clients replay from: one row per fanned-out event, numbered per trip in the
    same transaction as the change it records. `message` is exactly what was sent live."""

    class Source(models.TextChoices):
        """What made a `trip.updated`: an edit, a merge of a stale edit, a conflict's resolution."""

        EDIT = "edit"
        MERGE = "merge"
        RESOLUTION = "resolution"

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=40)
    field = models.CharField(max_length=40, blank=True)
    version = models.PositiveBigIntegerField(null=True, blank=True)
    # A `trip.updated`'s field value before the change, as a wire value (every field's wire value
    # is text or null): the history's "before", and the base text of a merge. Null also where it
    # is unknown (changes logged before this column): the previous logged change's value tells.
    before = models.TextField(null=True, blank=True)  # noqa: DJ001 - "" is a value, null unknown
    # A `trip.updated`'s Source; blank for the other events.
    source = models.CharField(max_length=10, choices=Source.choices, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    message = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trip", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["trip", "seq"], name="unique_trip_event_seq"),
        ]
        indexes = [models.Index(fields=["trip", "field", "version"], name="trip_event_field")]

    def __str__(self) -> str:
        return f"{self.trip_id}#{self.seq} {self.type}"


class ClientMutation(models.Model):
    """An idempotency record: the answer given to a client's `update_id`, replayed on retry."""

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="mutations")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    update_id = models.UUIDField()
    request = models.JSONField()
    result = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["trip", "actor", "update_id"], name="unique_client_mutation"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.update_id} on {self.trip_id}"


class Conflict(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    class Choice(models.TextChoices):
        MINE = "mine"
        THEIRS = "theirs"
        VALUE = "value"

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="conflicts")
    field = models.CharField(max_length=40)
    base_version = models.PositiveBigIntegerField()
    # The value in force when the proposal arrived, and who set it.
    applied_value = models.JSONField(null=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    applied_version = models.PositiveBigIntegerField()
    # The refused proposal, and who made it.
    proposed_value = models.JSONField(null=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    update_id = models.UUIDField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.CharField(max_length=10, choices=Choice.choices, blank=True)
    resolved_value = models.JSONField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["trip", "status"], name="conflict_trip_status")]

    def __str__(self) -> str:
        return f"conflict {self.pk} on {self.trip_id}.{self.field} ({self.status})"


class ChatMessage(models.Model):
    """One message of a trip's chat: its own stream with `seq`, idempotent per author by
    `client_id`. Plain text: stored as sent, never rendered as HTML."""

    trip = models.ForeignKey(Trip, on_delete=models.CASCADE, related_name="chat_messages")
    seq = models.PositiveBigIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField()
    client_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["trip", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["trip", "seq"], name="unique_chat_seq"),
            models.UniqueConstraint(
                fields=["trip", "author", "client_id"],
                condition=models.Q(client_id__isnull=False),
                name="unique_chat_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trip_id}#{self.seq}"


class Notification(models.Model):
    class Kind(models.TextChoices):
        MEMBER_ADDED = "member_added"
        ROLE_CHANGED = "role_changed"
        CONFLICT = "conflict"
        MENTION = "mention"
        AGENT_RUN_FINISHED = "agent_run_finished"

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    link = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"{self.recipient_id}: {self.title}"

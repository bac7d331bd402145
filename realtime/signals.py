"""Closes a user's sockets everywhere when the account is deactivated or deleted; records sign-ins
and revocations in the security log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from events import security
from events.broadcast import revoke_user_sockets


@receiver(pre_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime-user-was-active")
def _user_saving(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Whether an inactive account being saved was active until now (one query, only when it
    is saved inactive): its deactivation is recorded once, not at every later save."""
    instance._tripsage_deactivating = (
        instance.pk is not None
        and not instance.is_active
        and sender._default_manager.filter(pk=instance.pk, is_active=True).exists()
    )


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime-user-deactivated")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if not created and not instance.is_active:
        # Every save of an inactive account closes its sockets (cheap, and safe whatever raced
        # with the deactivation); only the deactivation itself is a security event.
        revoke_user_sockets(instance.pk)
        if getattr(instance, "_tripsage_deactivating", False):
            _record_revoked(instance.pk, "deactivated")


@receiver(post_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="realtime-user-deleted")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    revoke_user_sockets(instance.pk)
    _record_revoked(instance.pk, "deleted")


def _record_revoked(user_id: int, reason: str) -> None:
    """Recorded once the change is committed (a rolled-back deactivation revoked nothing)."""
    transaction.on_commit(
        lambda: security.record(security.Event.USER_REVOKED, user_id=user_id, reason=reason)
    )


# --- The security log (events.security): sign-ins through any form, and revocations.


@receiver(user_login_failed, dispatch_uid="security-login-failed")
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    """A refused sign-in (the token endpoint, the admin's and the browsable API's login): the
    same reason whether the user is unknown, inactive or the password wrong, as the client
    was told. Django has already masked the password in `credentials`; only the name is read."""
    security.record(
        security.Event.LOGIN_FAILED,
        username=str(credentials.get("username", "")),
        remote_addr=_address(request),
        reason="invalid_credentials",
        method=_login_method(request),
    )


@receiver(user_logged_in, dispatch_uid="security-logged-in")
def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A session sign-in (admin, browsable API); token sign-ins: realtime.token_views."""
    security.record(
        security.Event.LOGIN_SUCCEEDED,
        user_id=user.pk,
        remote_addr=_address(request),
        method="session",
    )


def _address(request: Any) -> str | None:
    return None if request is None else request.META.get("REMOTE_ADDR")


def _login_method(request: Any) -> str:
    path = "" if request is None else request.path
    return "token" if path.startswith("/api/auth/token") else "session"

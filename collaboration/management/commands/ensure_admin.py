"""Creates the first admin (a superuser) from the environment; running it again changes nothing."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction


class Command(BaseCommand):
    help = (
        "Create a superuser from DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_PASSWORD and "
        "DJANGO_SUPERUSER_EMAIL (or the options), if no user of that name exists. Safe to run "
        "on every start: an existing user is left as it is unless --reset-password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", help="default: $DJANGO_SUPERUSER_USERNAME")
        parser.add_argument("--email", help="default: $DJANGO_SUPERUSER_EMAIL (may be empty)")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="set an existing user's password to $DJANGO_SUPERUSER_PASSWORD",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username = options["username"] or os.environ.get("DJANGO_SUPERUSER_USERNAME", "")
        email = options["email"] or os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        # The password never comes as an option: command lines show in `ps` and shell history.
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if not username.strip():
            raise CommandError(
                "No admin user name: set DJANGO_SUPERUSER_USERNAME (or pass --username)."
            )
        username = username.strip()
        user_model = get_user_model()
        exists = (
            f"User '{username}' exists; left unchanged (--reset-password sets its password "
            "from DJANGO_SUPERUSER_PASSWORD)."
        )
        try:
            with transaction.atomic():
                user = user_model.objects.select_for_update().filter(username=username).first()
                if user is not None and not options["reset_password"]:
                    self.stdout.write(exists)
                    return
                candidate = user or user_model(
                    username=username, email=email, is_staff=True, is_superuser=True
                )
                self._check_password(password, candidate)
                candidate.set_password(password)
                candidate.save()
        except IntegrityError:
            # Another replica starting at the same moment created it first.
            self.stdout.write(exists)
            return
        if user is None:
            self.stdout.write(f"Created the admin '{username}'.")
        else:
            self.stdout.write(f"Reset the password of '{username}'.")

    def _check_password(self, password: str, user: Any) -> None:
        if not password:
            raise CommandError(
                "No admin password: set DJANGO_SUPERUSER_PASSWORD in the environment (for "
                "example from a secret store; it is never taken from the command line)."
            )
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise CommandError(
                "DJANGO_SUPERUSER_PASSWORD is refused: " + " ".join(error.messages)
            ) from None

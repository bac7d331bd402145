"""Collaboration: trips, members and roles (edits, conflicts, chat and notifications follow)."""

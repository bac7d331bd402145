"""STATICFILES_DIRS's finder, told to leave out the browser client's development files.

WhiteNoise (WHITENOISE_USE_FINDERS, development and tests) lists every file the finders know,
with no ignore patterns, each time Django loads the middleware (every test client): with
clients/js/node_modules (Jest, Babel, React, jsdom: thousands of files) that walk cost most of
a test run. collectstatic already skips them (tripsage.apps); this finder skips them always.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.utils import matches_patterns

from tripsage.apps import TripSageStaticFilesConfig

IGNORED = TripSageStaticFilesConfig.ignore_patterns


def _ignored(path: str) -> bool:
    return any(matches_patterns(part, IGNORED) for part in path.replace("\\", "/").split("/"))


class FileSystemFinder(finders.FileSystemFinder):
    def list(self, ignore_patterns: Iterable[str] | None) -> Iterable[Any]:
        return super().list([*(ignore_patterns or ()), *IGNORED])

    def find(self, path: str, find_all: bool = False) -> Any:
        if _ignored(path):
            return []  # as the base class answers for a file it does not have
        return super().find(path, True) if find_all else super().find(path)

"""The staticfiles app, told to leave the browser client's development files uncollected."""

from __future__ import annotations

from django.contrib.staticfiles.apps import StaticFilesConfig


class TripSageStaticFilesConfig(StaticFilesConfig):
    # clients/js is a static folder (STATICFILES_DIRS) and an npm package: its devDependencies
    # (50 MB, TypeScript's compiler binary among them) and type-check files are not for browsers.
    ignore_patterns = [
        *StaticFilesConfig.ignore_patterns,
        "node_modules",
        "types-test",
        "tsconfig.json",
        "package-lock.json",
    ]

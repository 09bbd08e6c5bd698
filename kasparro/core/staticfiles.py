"""Static files: where they come from and how deployments store them.

Deployments: hashed and compressed once `collectstatic` has run (the image
does it at build time); plain names before it, served by whitenoise straight from the apps'
folders, so a deployment that never collected (a fresh clone with DEBUG off) still has a
working admin instead of a 500 for a missing manifest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core import checks
from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: nothing was collected
            return name
        return super().stored_name(name)


class PackageFileFinder(BaseFinder):
    """Static files that a Python package ships but not as Django static files (plotly.js in
    the plotly wheel): `STATICFILES_PACKAGE_FILES` maps a static path to (package, path in the
    package). Installed from a registry by `make install`, served and collected like any other
    static file; nothing is copied into the repository."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.files: dict[str, Path] = {}
        for static_path, (package, inner) in settings.STATICFILES_PACKAGE_FILES.items():
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                continue
            self.files[static_path] = Path(next(iter(spec.submodule_search_locations))) / inner

    def check(self, **kwargs) -> list[checks.CheckMessage]:
        missing = sorted(set(settings.STATICFILES_PACKAGE_FILES) - set(self.files))
        missing += sorted(p for p, f in self.files.items() if not f.is_file())
        return [
            checks.Error(f"static file {p} is not in its package", id="core.E001") for p in missing
        ]

    def find(self, path: str, find_all: bool = False, **kwargs):
        found = self.files.get(path)
        if found is None or not found.is_file():
            return [] if find_all else None
        return [str(found)] if find_all else str(found)

    def list(self, ignore_patterns):
        for static_path, found in self.files.items():
            if found.is_file():
                storage = FileSystemStorage(location=str(found.parent))
                storage.prefix = str(Path(static_path).parent)
                yield found.name, storage

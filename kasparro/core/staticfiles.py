"""Static files for deployments: hashed and compressed once `collectstatic` has run (the image
does it at build time); plain names before it, served by whitenoise straight from the apps'
folders, so a deployment that never collected (a fresh clone with DEBUG off) still has a
working admin instead of a 500 for a missing manifest."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # no manifest: nothing was collected
            return name
        return super().stored_name(name)

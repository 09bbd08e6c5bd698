"""The registry of source plug-ins, built from the source catalogue (kasparro/core/catalogue.py):
adding a source means one module here and one catalogue line. A system check (`etl.checks`,
run by `manage.py check` in CI) verifies that every plug-in's name and kind agree with its line."""

from __future__ import annotations

from django.utils.module_loading import import_string

from etl.sources.base import Source
from kasparro.core.catalogue import CATALOGUE, source_entry

REGISTRY: dict[str, type[Source]] = {entry.name: import_string(entry.plugin) for entry in CATALOGUE}


def get_source_class(name: str) -> type[Source]:
    """The plug-in for a name or alias; KeyError naming the known sources otherwise."""
    return REGISTRY[source_entry(name).name]


def build_source(name: str) -> Source:
    """An instance configured from settings."""
    return get_source_class(name)()

"""System checks: run by `manage.py check` (CI, the image build), `migrate` and `runserver`."""

from __future__ import annotations

from django.core import checks

from kasparro.core.catalogue import CATALOGUE


@checks.register()
def source_plugins_match_catalogue(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every catalogue entry's plug-in carries the entry's name and kind."""
    from etl.sources import REGISTRY

    errors = []
    for entry in CATALOGUE:
        plugin = REGISTRY[entry.name]
        if (plugin.name, plugin.kind) != (entry.name, entry.kind):
            errors.append(
                checks.Error(
                    f"source plug-in {entry.plugin} is ({plugin.name!r}, {plugin.kind!r}) but the "
                    f"catalogue says ({entry.name!r}, {entry.kind!r})",
                    hint="Make kasparro/core/catalogue.py and the plug-in agree.",
                    id="etl.E001",
                )
            )
    return errors

"""How resources get their connection settings: from `deeplens.settings.Settings`, the one list
every DeepLens process reads, handed to the factories in `deeplens.clients` that the API calls
too. Resource fields are only the knobs that belong to Dagster's side (pool sizes, batch sizes).
"""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from deeplens.settings import Settings


class SettingsResource(dg.ConfigurableResource):
    """Base of the resources that reach a DeepLens dependency; reads ``DEEPLENS_*`` once, when
    first asked (never at import)."""

    _settings: Settings | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

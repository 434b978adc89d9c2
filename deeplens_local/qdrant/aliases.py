"""Aliases: names that resolve to a physical collection, persisted in ``aliases.json``.

A change request (``POST /collections/aliases``) is applied to a copy, validated as a whole,
written atomically and only then swapped in: a reader resolving a name sees the mapping before
the request or after it, never in between, and a failed request changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from deeplens_local.qdrant.errors import AlreadyExists, FormatError, NotFound, collection_not_found
from deeplens_local.qdrant.jsonio import write_json


class Aliases:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}

    def get(self, alias: str) -> str | None:
        return self._map.get(alias)

    def items(self) -> list[tuple[str, str]]:
        return sorted(self._map.items())

    def of(self, collection: str) -> list[str]:
        return sorted(alias for alias, target in self._map.items() if target == collection)

    def apply(self, actions: Any, collections: Collection[str]) -> None:
        """Apply Qdrant's alias actions all together, or none of them."""
        if not isinstance(actions, list):
            raise FormatError("missing field `actions`")
        new = dict(self._map)
        try:
            for action in actions:
                self._apply_one(new, action, collections)
        except (KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"invalid alias action: {exc!r}") from exc
        self._commit(new)

    @staticmethod
    def _apply_one(new: dict[str, str], action: Any, collections: Collection[str]) -> None:
        if not isinstance(action, dict) or len(action) != 1:
            raise FormatError(f"invalid alias action {action!r}")
        kind, spec = next(iter(action.items()))
        if kind == "create_alias":
            target, alias = spec["collection_name"], spec["alias_name"]
            if target not in collections:
                raise collection_not_found(target)
            if alias in collections:
                raise AlreadyExists(f"Collection `{alias}` already exists!")
            new[alias] = target
        elif kind == "delete_alias":
            new.pop(spec["alias_name"], None)
        elif kind == "rename_alias":
            old, renamed = spec["old_alias_name"], spec["new_alias_name"]
            if old not in new:
                raise NotFound(f"Alias {old} does not exists!")
            if renamed in collections:
                raise AlreadyExists(f"Collection `{renamed}` already exists!")
            new[renamed] = new.pop(old)
        else:
            raise FormatError(f"unknown alias action `{kind}`")

    def remove_collection(self, collection: str) -> None:
        new = {alias: target for alias, target in self._map.items() if target != collection}
        if len(new) != len(self._map):
            self._commit(new)

    def _commit(self, new: dict[str, str]) -> None:
        write_json(self._path, new)
        self._map = new

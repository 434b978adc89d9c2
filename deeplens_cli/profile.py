"""Where the client commands find DeepLens, and with which keys.

Each value comes from the first of: the environment (`DEEPLENS_API_URL`, `DEEPLENS_UI_URL`,
`DEEPLENS_API_KEY`, `DEEPLENS_ADMIN_KEY`), the chosen profile of the profile file
(`~/.config/deeplens/profile.toml`, one table per profile), a `deeplens up` running on this
machine (its state file gives the URLs and the admin key, so that the commands work from any
directory), and the defaults of a local stack. This is the client's own configuration: the
servers' settings (`deeplens.settings`) are another matter.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("api_url", "ui_url", "api_key", "admin_key")
DEFAULTS = {"api_url": "http://127.0.0.1:8000", "ui_url": "http://127.0.0.1:3000"}
DEFAULT_PROFILE = "default"


class ProfileError(Exception):
    """The profile file or the profile asked for is wrong: say so rather than guess."""


@dataclass(frozen=True)
class Profile:
    api_url: str
    ui_url: str
    api_key: str | None = None
    admin_key: str | None = None
    # Where each value came from ("env", "profile NAME", "deeplens up", "default"): shown by
    # `deeplens status`, since a wrong URL is the first thing to suspect.
    sources: Mapping[str, str] | None = None


def env_var(field: str) -> str:
    return f"DEEPLENS_{field.upper()}"


def profile_file(environ: Mapping[str, str]) -> Path:
    if environ.get("DEEPLENS_PROFILE_FILE"):
        return Path(environ["DEEPLENS_PROFILE_FILE"])
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "deeplens" / "profile.toml"


def up_pointer(environ: Mapping[str, str]) -> Path:
    """The file in which `deeplens up` leaves its home, for commands run from elsewhere."""
    state = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "deeplens" / "up-home"


def resolve(
    name: str | None,
    environ: Mapping[str, str],
    profiles: Mapping[str, Any],
    local: Mapping[str, str],
) -> Profile:
    """The profile, value by value: environment, then the named profile, then the local stack,
    then the defaults. A name asked for (not the implicit default) must exist."""
    chosen = name or environ.get("DEEPLENS_PROFILE") or DEFAULT_PROFILE
    table = profiles.get(chosen)
    if table is None and (name or environ.get("DEEPLENS_PROFILE")):
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileError(f"no profile {chosen!r} (profiles: {known})")
    table = dict(table or {})
    unknown = set(table) - set(FIELDS)
    if unknown:
        raise ProfileError(f"profile {chosen!r}: unknown key(s) {sorted(unknown)}; use {FIELDS}")
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for field in FIELDS:
        for source, layer in (
            ("env", {f: environ.get(env_var(f)) for f in FIELDS}),
            (f"profile {chosen}", table),
            ("deeplens up", local),
            ("default", DEFAULTS),
        ):
            value = layer.get(field)
            if value:
                values[field], sources[field] = str(value), source
                break
    return Profile(
        api_url=str(values["api_url"]).rstrip("/"),
        ui_url=str(values["ui_url"]).rstrip("/"),
        api_key=values.get("api_key"),
        admin_key=values.get("admin_key"),
        sources=sources,
    )


def read_profiles(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from exc


def local_home(environ: Mapping[str, str], home: Path | None = None) -> Path | None:
    """The home of a `deeplens up` running on this machine: the one given, else DEEPLENS_HOME,
    else `.deeplens` here, else the one the last `deeplens up` left its pointer to."""
    try:  # the local stack, only when asked (an install may leave it out)
        from deeplens_local.stack.stack import stack_running
    except ImportError:
        return None
    if home is not None:
        candidates = [home]
    elif environ.get("DEEPLENS_HOME"):
        candidates = [Path(environ["DEEPLENS_HOME"])]
    else:
        candidates = [Path(".deeplens")]
        with contextlib.suppress(OSError):
            candidates.append(Path(up_pointer(environ).read_text().strip()))
    return next((c for c in candidates if stack_running(c)), None)


def local_state(home: Path | None) -> dict[str, Any]:
    """The state file of the stack running in `home`: its pid, endpoints and admin key file."""
    if home is None:
        return {}
    try:
        from deeplens_local.stack.stack import read_state
    except ImportError:
        return {}
    return read_state(home) or {}


def local_values(home: Path | None) -> dict[str, str]:
    """The URLs and admin key of the stack running in `home` (none when it isn't running)."""
    state = local_state(home)
    endpoints = state.get("endpoints", {})
    values = {"api_url": endpoints.get("api", ""), "ui_url": endpoints.get("ui", "")}
    with contextlib.suppress(KeyError, OSError):
        values["admin_key"] = Path(state["admin_key_file"]).read_text().strip()
    return {k: v for k, v in values.items() if v}


def load(name: str | None = None, home: Path | None = None) -> Profile:
    """The profile this command runs with (see the module's docstring)."""
    environ = os.environ
    profiles = read_profiles(profile_file(environ))
    partial = resolve(name, environ, profiles, {})
    if partial.sources and all(partial.sources[f] != "default" for f in DEFAULTS):
        return partial  # both URLs given: no need to look for a local stack
    return resolve(name, environ, profiles, local_values(local_home(environ, home)))

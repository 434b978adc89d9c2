"""Session fixtures: the real local stack, started once through the code behind `deeplens up`.

Tests that need no service don't use these fixtures and so never wait for the stack. With
``DEEPLENS_DATABASE_URL`` / ``DEEPLENS_REDIS_URL`` / ... set, the stack uses those servers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplens.stack.stack import Stack, StackConfig


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = Path(tmp_path_factory.mktemp("deeplens-home"))
    config = StackConfig.on_free_ports(home)
    with Stack(config) as running:
        yield running


@pytest.fixture(scope="session")
def api_url(stack: Stack) -> str:
    return stack.endpoints["api"].url


@pytest.fixture(scope="session")
def ui_url(stack: Stack) -> str:
    return stack.endpoints["ui"].url


@pytest.fixture(scope="session")
def admin_key(stack: Stack) -> str:
    return stack.env["DEEPLENS_ADMIN_KEY"]

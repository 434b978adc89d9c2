"""The Dagster daemon, or the whole stack, restarted mid-run: runs left `STARTED` with no worker
behind them are found and failed, their images retried, and ingestion goes on. Several times:
where a restart lands in a run is a matter of timing."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from deeplens_local.stack.stack import Stack, StackConfig
from tests.api.stack_helpers import create_tenant
from tests.conftest import FAST_HEALING, GENEROUS_LIMITS
from tests.faults.harness import assert_healed, photos, upload_all, wait_worker


@pytest.mark.timeout(900)
def test_the_daemon_restarted_mid_run(stack: Stack, api_url: str, admin_key: str) -> None:
    for attempt in range(2):
        tenant = create_tenant(api_url, admin_key, f"daemon-{attempt}")
        accepted = upload_all(api_url, tenant, photos(150, 30_000 + 1000 * attempt))
        wait_worker(stack, tenant.tenant_id)
        # SIGKILL takes the daemon's code server and run workers with it.
        stack.restart("dagster-daemon", sig=signal.SIGKILL)
        assert_healed(stack, tenant, accepted, timeout=400)


@pytest.mark.stack
@pytest.mark.timeout(1200)
def test_the_whole_stack_restarted_mid_run() -> None:
    home = Path(tempfile.mkdtemp(prefix="deeplens-restart-"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DEEPLENS_")}
    config = StackConfig.on_free_ports(home, environ={**environ, **FAST_HEALING, **GENEROUS_LIMITS})
    accepted: dict[str, list[str]] = {}
    tenants = []
    for cycle in range(2):
        running = Stack(config).start()
        try:
            api_url = running.endpoints["api"].url
            admin_key = running.env["DEEPLENS_ADMIN_KEY"]
            tenant = create_tenant(api_url, admin_key, f"restart-{cycle}")
            tenants.append(tenant)
            accepted[tenant.tenant_id] = upload_all(api_url, tenant, photos(150, 40_000 + cycle))
            wait_worker(running, tenant.tenant_id)
        finally:
            running.stop()  # mid-run: every process of the stack goes, run workers included
    running = Stack(config).start()
    try:
        for tenant in tenants:
            assert_healed(running, tenant, accepted[tenant.tenant_id], timeout=400)
    finally:
        running.stop()

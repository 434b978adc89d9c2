"""Run workers that die, hang or stall: their images are retried, their run slots freed, and
other tenants keep ingesting, with no operator action."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from deeplens_local.stack.stack import Stack
from tests.api.stack_helpers import create_tenant
from tests.faults.harness import (
    Worker,
    assert_healed,
    photos,
    run_worker_pids,
    signal_busy_worker,
    upload_all,
    wait_until,
)


@pytest.mark.timeout(600)
def test_a_run_worker_killed_mid_run_loses_nothing(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "killed")
    accepted = upload_all(api_url, tenant, photos(200, 10_000))
    signal_busy_worker(stack, tenant.tenant_id, signal.SIGKILL)  # as the OOM killer would
    ended = assert_healed(stack, tenant, accepted)
    assert any(attempts >= 1 for _, _, attempts in ended.values()), "the kill was noticed"


@pytest.mark.timeout(600)
def test_two_hung_run_workers_do_not_stop_other_tenants(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    first, second = (
        create_tenant(api_url, admin_key, "hung-a"),
        create_tenant(api_url, admin_key, "hung-b"),
    )
    # Each tenant's worker is frozen mid-run, as soon as it is busy (a worker found any later
    # may have ended): a frozen process's heartbeat stops with it.
    accepted: dict[str, list[str]] = {}
    hung: list[Worker] = []
    try:
        for tenant, seed in ((first, 11_000), (second, 12_000)):
            accepted[tenant.tenant_id] = upload_all(api_url, tenant, photos(150, seed))
            hung.append(signal_busy_worker(stack, tenant.tenant_id, signal.SIGSTOP))
        other = create_tenant(api_url, admin_key, "bystander")
        started = time.monotonic()
        mine = upload_all(api_url, other, photos(5, 13_000))
        assert_healed(stack, other, mine, timeout=180)
        assert time.monotonic() - started < 180, "another tenant kept ingesting"
        assert_healed(stack, first, accepted[first.tenant_id])
        assert_healed(stack, second, accepted[second.tenant_id])
    finally:
        for worker in hung:  # the reconciler kills them; this only tidies up after a failure
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)


@pytest.mark.timeout(600)
def test_a_run_worker_stalled_while_starting_is_given_up_and_retried(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "stalled")
    before = run_worker_pids()
    stalled: set[int] = set()

    def stall_new_workers() -> bool:
        for pid in run_worker_pids() - before - stalled:
            try:
                os.kill(pid, signal.SIGSTOP)
                stalled.add(pid)
            except ProcessLookupError:
                pass
        return bool(stalled)

    accepted = upload_all(api_url, tenant, photos(20, 14_000))
    wait_until(stall_new_workers, "a run worker to start", 120)
    try:
        assert_healed(stack, tenant, accepted, timeout=400)
    finally:
        for pid in stalled:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

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
    assert_healed,
    photos,
    run_worker_pids,
    upload_all,
    wait_busy_worker,
    wait_until,
    wait_worker,
)


@pytest.mark.timeout(600)
def test_a_run_worker_killed_mid_run_loses_nothing(
    stack: Stack, api_url: str, admin_key: str
) -> None:
    tenant = create_tenant(api_url, admin_key, "killed")
    accepted = upload_all(api_url, tenant, photos(200, 10_000))
    worker = wait_busy_worker(stack, tenant.tenant_id)
    os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer or a lost node would
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
    accepted = {
        first.tenant_id: upload_all(api_url, first, photos(150, 11_000)),
        second.tenant_id: upload_all(api_url, second, photos(150, 12_000)),
    }
    hung = [wait_worker(stack, first.tenant_id), wait_worker(stack, second.tenant_id)]
    for worker in hung:
        os.kill(worker.pid, signal.SIGSTOP)  # a frozen process: its heartbeat stops with it
    try:
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

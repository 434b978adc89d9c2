"""`deeplens up`, `down` and `status` of the local stack (the `deeplens` command itself is
`deeplens_cli`, which imports this module only for these commands)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from deeplens_local.stack.stack import AlreadyRunning, Stack, StackConfig, read_state, stack_running


def up(config: StackConfig) -> int:
    stack = Stack(config)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    print("Starting DeepLens ...", flush=True)
    try:
        stack.start()
    except AlreadyRunning as exc:
        print(f"{exc}; nothing started.")
        for name, url in exc.state.get("endpoints", {}).items():
            print(f"  {name:10} {url}")
        print("Stop it with `deeplens down` (or Ctrl-C in its terminal).")
        return 1
    except KeyboardInterrupt:
        print("Interrupted while starting; everything started so far has been stopped.")
        return 130
    _print_endpoints(stack)
    try:
        while True:
            time.sleep(1)
            stack.check_alive()
    except KeyboardInterrupt:
        print("\nStopping DeepLens ...", flush=True)
        return_code = 0
    except RuntimeError as exc:
        print(f"\n{exc}\nStopping DeepLens ...", flush=True)
        return_code = 1
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stack.stop()
    print(f"Stopped. Data kept under {stack.home}.")
    return return_code


def _print_endpoints(stack: Stack) -> None:
    print("DeepLens is up:")
    for endpoint in stack.endpoints.values():
        origin = "embedded" if endpoint.embedded else "from DEEPLENS_*"
        print(f"  {endpoint.name:28} {endpoint.url}   ({origin})")
    if "api" in stack.endpoints:
        print(f"  {'API reference':28} {stack.endpoints['api'].url}/docs")
    print(f"  {'admin key':28} {stack.env.get('DEEPLENS_ADMIN_KEY')}")
    print(f"  {'data and logs':28} {stack.home}")
    print("Press Ctrl-C (or run `deeplens down`) to stop.", flush=True)


def down(home: Path, timeout: float) -> int:
    state = read_state(home)
    if not state or not stack_running(home):
        print("DeepLens is not running.")
        return 0
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print("DeepLens is not running (stale state removed).")
        (home.resolve() / "run" / "stack.json").unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not stack_running(home):
            print("DeepLens stopped.")
            return 0
        time.sleep(0.2)
    print(f"DeepLens (pid {pid}) did not stop within {timeout:.0f}s.")
    return 1


def status(home: Path) -> int:
    state = read_state(home)
    if not state or not stack_running(home):
        print("DeepLens is not running.")
        return 1
    print(f"DeepLens is running (pid {state['pid']}):")
    for name, url in state["endpoints"].items():
        print(f"  {name:10} {url}")
    return 0

"""The ``deeplens`` command: ``up`` starts the whole system, ``down`` stops it."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from deeplens.stack.stack import AlreadyRunning, Stack, StackConfig, read_state, stack_running


def _up(args: argparse.Namespace) -> int:
    config = StackConfig(
        home=Path(args.home),
        ui_port=args.ui_port,
        api_port=args.api_port,
        postgres_port=args.postgres_port,
        kafka_port=args.kafka_port,
        qdrant_port=args.qdrant_port,
        redis_port=args.redis_port,
    )
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


def _down(args: argparse.Namespace) -> int:
    state = read_state(Path(args.home))
    if not state or not stack_running(Path(args.home)):
        print("DeepLens is not running.")
        return 0
    pid = int(state["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        print("DeepLens is not running (stale state removed).")
        (Path(args.home).resolve() / "run" / "stack.json").unlink(missing_ok=True)
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not stack_running(Path(args.home)):
            print("DeepLens stopped.")
            return 0
        time.sleep(0.2)
    print(f"DeepLens (pid {pid}) did not stop within {args.timeout:.0f}s.")
    return 1


def _status(args: argparse.Namespace) -> int:
    state = read_state(Path(args.home))
    if not state or not stack_running(Path(args.home)):
        print("DeepLens is not running.")
        return 1
    print(f"DeepLens is running (pid {state['pid']}):")
    for name, url in state["endpoints"].items():
        print(f"  {name:10} {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeplens", description=__doc__)
    parser.add_argument(
        "--home",
        default=os.environ.get("DEEPLENS_HOME", ".deeplens"),
        help="data, logs and state of the local stack (default: .deeplens, or $DEEPLENS_HOME)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole system and stay in the foreground")
    for name, default in [
        ("ui", 3000),
        ("api", 8000),
        ("postgres", 15432),
        ("kafka", 19092),
        ("qdrant", 16333),
        ("redis", 16379),
    ]:
        up.add_argument(
            f"--{name}-port",
            type=int,
            default=int(os.environ.get(f"DEEPLENS_{name.upper()}_PORT", default)),
            help=f"port for {name} (default {default}; 0 picks a free one)",
        )
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop a running `deeplens up`")
    down.add_argument("--timeout", type=float, default=60)
    down.set_defaults(func=_down)
    status = sub.add_parser("status", help="show whether the system runs and where")
    status.set_defaults(func=_status)
    sub.add_parser(
        "model",
        help="inspect an ONNX model or cut it to its pooled layer (`deeplens model --help`)",
        add_help=False,
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("DEEPLENS_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["model"]:  # its own parser: `deeplens model nodes|cut ...`
        from deeplens.model import cut

        return cut.main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

"""Local-stack commands. Each imports `deeplens_local` when it runs, so that the production
commands beside them never load it (`status`, which also reads a local stack's state, is a client
command: `deeplens_cli/status.py`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from deeplens_cli import profile

HomeOption = Annotated[
    Path,
    typer.Option(
        "--home",
        envvar="DEEPLENS_HOME",
        help="Data, logs and state of the local stack.",
    ),
]


def _port(name: str, default: int) -> object:
    return typer.Option(
        default,
        f"--{name}-port",
        envvar=f"DEEPLENS_{name.upper()}_PORT",
        help=f"Port for {name} (0 picks a free one).",
    )


def up(
    home: HomeOption = Path(".deeplens"),
    ui_port: int = _port("ui", 3000),  # type: ignore[assignment]
    api_port: int = _port("api", 8000),  # type: ignore[assignment]
    postgres_port: int = _port("postgres", 15432),  # type: ignore[assignment]
    kafka_port: int = _port("kafka", 19092),  # type: ignore[assignment]
    qdrant_port: int = _port("qdrant", 16333),  # type: ignore[assignment]
    redis_port: int = _port("redis", 16379),  # type: ignore[assignment]
    s3_port: int = _port("s3", 19000),  # type: ignore[assignment]
) -> None:
    """Start the whole system in the foreground (embedded servers where DEEPLENS_* is unset)."""
    from deeplens_local import cli
    from deeplens_local.stack.stack import StackConfig

    config = StackConfig(
        home=home,
        ui_port=ui_port,
        api_port=api_port,
        postgres_port=postgres_port,
        kafka_port=kafka_port,
        qdrant_port=qdrant_port,
        redis_port=redis_port,
        s3_port=s3_port,
    )
    _leave_pointer(home)
    raise typer.Exit(cli.up(config))


def _leave_pointer(home: Path) -> None:
    """Note where this stack lives, so that client commands run from any directory find it
    (they check that it runs before using it; a stale pointer is harmless)."""
    pointer = profile.up_pointer(os.environ)
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(str(home.resolve()))
    except OSError:
        pass  # a read-only home directory: the commands then find it only from its directory


def down(
    home: HomeOption = Path(".deeplens"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 60,
) -> None:
    """Stop a running `deeplens up`."""
    from deeplens_local import cli

    raise typer.Exit(cli.down(home, timeout))


def model(ctx: typer.Context) -> None:
    """Model tools: `nodes MODEL`, `cut SRC DST --output NODE`, `bench [--threads N]`."""
    args = list(ctx.args)
    if args[:1] == ["bench"]:
        from deeplens_local.model import benchmark

        raise typer.Exit(benchmark.main(args[1:]))
    from deeplens_local.model import cut

    raise typer.Exit(cut.main(args))

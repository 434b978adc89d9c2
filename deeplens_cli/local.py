"""Local-stack commands. Each imports `deeplens_local` when it runs, so that the production
commands beside them never load it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    )
    raise typer.Exit(cli.up(config))


def down(
    home: HomeOption = Path(".deeplens"),
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to stop.")] = 60,
) -> None:
    """Stop a running `deeplens up`."""
    from deeplens_local import cli

    raise typer.Exit(cli.down(home, timeout))


def status(home: HomeOption = Path(".deeplens")) -> None:
    """Show whether the local stack runs and where."""
    from deeplens_local import cli

    raise typer.Exit(cli.status(home))


def model(ctx: typer.Context) -> None:
    """Model tools: `nodes MODEL`, `cut SRC DST --output NODE`, `bench [--threads N]`."""
    args = list(ctx.args)
    if args[:1] == ["bench"]:
        from deeplens_local.model import benchmark

        raise typer.Exit(benchmark.main(args[1:]))
    from deeplens_local.model import cut

    raise typer.Exit(cut.main(args))

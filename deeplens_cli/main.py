"""The `deeplens` command: production set-up (`migrate`, `relay`) and the local stack (`up`,
`down`, `status`, `model`).

Production commands never import the local stack: its commands import it when they run.
"""

from __future__ import annotations

import logging
import os

import typer

from deeplens.settings import Settings, env_name
from deeplens_cli import local, ops

app = typer.Typer(
    name="deeplens",
    help="DeepLens: multi-tenant image similarity search on Dagster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(ops.migrate)
app.command()(ops.relay)
app.command()(local.up)
app.command()(local.down)
app.command()(local.status)
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(local.model)


def main() -> None:
    # The commands print what a person needs; logs only with DEEPLENS_LOG_LEVEL set.
    level = Settings().log_level if env_name("log_level") in os.environ else "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()

"""The `deeplens` command: production set-up (`migrate`, `relay`), the client commands over the
HTTP API (`tenants`, `keys`, `admin models`, `upload`, `search`, `similar`, `reindex`,
`retry-failed`, `status`) and the local stack (`up`, `down`, `model`).

Production and client commands never import the local stack: its commands import it when they
run (and the client commands only to find a running `deeplens up`).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from deeplens import logs
from deeplens.settings import Settings, env_name
from deeplens_cli import admin, images, local, ops, status

app = typer.Typer(
    name="deeplens",
    help="DeepLens: multi-tenant image similarity search on Dagster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def choose_profile(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="DEEPLENS_PROFILE",
            help="A profile of ~/.config/deeplens/profile.toml for the client commands.",
        ),
    ] = None,
) -> None:
    """DeepLens: multi-tenant image similarity search on Dagster.

    Client commands read DEEPLENS_API_URL, DEEPLENS_UI_URL, DEEPLENS_API_KEY and
    DEEPLENS_ADMIN_KEY, else the profile, else a running `deeplens up`.
    """


app.command()(ops.migrate)
app.command()(ops.relay)
app.command()(local.up)
app.command()(local.down)
app.command()(status.status)
app.add_typer(admin.tenants_app, name="tenants")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.admin_app, name="admin")
app.command()(images.upload)
app.command()(images.search)
app.command()(images.similar)
app.command()(admin.reindex)
app.command("retry-failed")(admin.retry_failed)
app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)(local.model)


def main() -> None:
    # The commands print what a person needs; logs only with DEEPLENS_LOG_LEVEL set (in the
    # format of DEEPLENS_LOG_FORMAT).
    logs.configure(Settings(), None if env_name("log_level") in os.environ else "WARNING")
    app()


if __name__ == "__main__":
    main()

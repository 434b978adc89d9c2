"""The HTTP side of the client commands: the search API (tenant or admin key) and Dagster's
GraphQL, with the API's 429s waited out as its `Retry-After` says."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from deeplens_cli.profile import Profile, ProfileError

P = ParamSpec("P")
R = TypeVar("R")

err = Console(stderr=True)
# How often one request is sent again after a 429 before the command gives up on it.
MAX_429_RETRIES = 20


class ApiError(Exception):
    """An answer the command can't go on with; its text says what the server said."""


def retry_after(response: httpx.Response, default: float = 1.0) -> float:
    """Seconds to wait before sending again: the `Retry-After` header (seconds), within 0.1-60."""
    try:
        seconds = float(response.headers.get("retry-after", default))
    except ValueError:
        seconds = default
    return min(max(seconds, 0.1), 60.0)


def detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)


class Client:
    """One connection pool for a command (thread-safe: `upload` shares it between threads)."""

    def __init__(self, profile: Profile, timeout: float = 60) -> None:
        self.profile = profile
        self.http = httpx.Client(base_url=profile.api_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, admin: bool) -> dict[str, str]:
        if admin:
            if not self.profile.admin_key:
                raise ProfileError("no admin key: set DEEPLENS_ADMIN_KEY or admin_key in a profile")
            return {"X-Admin-Key": self.profile.admin_key}
        if not self.profile.api_key:
            raise ProfileError("no API key: set DEEPLENS_API_KEY or api_key in a profile")
        return {"X-API-Key": self.profile.api_key}

    def request(
        self, method: str, path: str, *, admin: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """The answer to a request; an error status raises `ApiError`, a 429 is sent again."""
        headers = self._headers(admin)
        for _ in range(MAX_429_RETRIES):
            response = self.http.request(method, path, headers=headers, **kwargs)
            if response.status_code != 429:
                break
            time.sleep(retry_after(response))
        if response.status_code >= 400:
            raise ApiError(f"{method} {path}: {response.status_code} {detail(response)}")
        return response

    def get(self, path: str, *, admin: bool = False, **kwargs: Any) -> Any:
        return self.request("GET", path, admin=admin, **kwargs).json()

    def tenant(self, tenant_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v1/admin/tenants/{tenant_id}", admin=True))

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(
            f"{self.profile.ui_url}/graphql", json={"query": query, "variables": variables or {}}
        )
        if response.status_code >= 400:
            raise ApiError(f"Dagster GraphQL: {response.status_code} {response.text[:300]}")
        body = response.json()
        if body.get("errors"):
            raise ApiError(f"Dagster GraphQL: {body['errors']}")
        return dict(body["data"])


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a person can act on into one line on stderr and exit status 1, rather
    than a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ApiError, ProfileError) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        except httpx.TransportError as exc:
            where = f"cannot reach {exc.request.url}: {exc}"
            err.print(f"[red]error:[/red] {escape(where)}", highlight=False)
        raise typer.Exit(1)

    return run

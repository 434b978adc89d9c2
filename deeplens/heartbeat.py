"""A run worker's heartbeat: a thread that records, every few seconds, that the run is alive.

The reconciler fails a run whose heartbeat stopped (its worker killed, hung or lost), so that
its images are retried and its run slot is freed, whatever launched it. A stopped (SIGSTOP) or
killed process stops beating with it; a busy one does not, since inference leaves the
interpreter free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading

import psycopg

from deeplens.catalog import runs

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self, database_url: str, run_id: str, tenant_id: str | None, interval: float
    ) -> None:
        self._database_url = database_url
        self.run_id = run_id
        self._tenant_id = tenant_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deeplens-heartbeat", daemon=True)
        self._conn: psycopg.Connection | None = None

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating, with a last beat: the run is about to end, and until Dagster records
        that it did, it must not look silent. The reconciler clears the row once it has."""
        self._stop.set()
        self._thread.join(self._interval + 5)
        try:
            with psycopg.connect(self._database_url, autocommit=True, connect_timeout=5) as conn:
                runs.beat(conn, self.run_id, self._tenant_id, socket.gethostname(), os.getpid())
        except psycopg.Error as exc:
            log.warning("could not beat the last heartbeat of run %s: %s", self.run_id, exc)
        self._close()

    def _run(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self._database_url, autocommit=True, connect_timeout=5
                    )
                runs.beat(self._conn, self.run_id, self._tenant_id, host, pid)
            except psycopg.Error as exc:  # the catalog is down: beat again when it is back
                log.warning("heartbeat of run %s: %s", self.run_id, exc)
                self._close()
            if self._stop.wait(self._interval):
                return

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

"""Status change fan-out for WebSockets, and tenant deletions: one listening connection per
process.

A trigger on the images table notifies ``deeplens_image`` with the image id whenever an image's
status changes. A background thread listens and wakes the sockets that watch that id; each socket
then reads the status itself (through the pool). Wake-ups coalesce, so a burst of changes costs
one read. After a reconnect every subscriber is woken, since changes may have been missed.

The same connection listens on ``deeplens_tenant``, where a deleted tenant's id is announced, and
hands it to ``on_tenant_deleted`` (the API forgets the tenant's cached key: several API processes
each keep their own cache).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "deeplens_image"
TENANT_CHANNEL = "deeplens_tenant"


class Subscription:
    """A watcher of one image id; `wait()` returns after the image may have changed."""

    def __init__(self, image_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self.image_id = image_id
        self._loop = loop
        self._event = asyncio.Event()

    def wake(self) -> None:
        """Called from any thread."""
        self._loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> None:
        await self._event.wait()
        self._event.clear()


class StatusHub:
    def __init__(
        self,
        database_url: str,
        reconnect_delay: float = 1.0,
        on_tenant_deleted: Callable[[str], None] | None = None,
    ) -> None:
        self._database_url = database_url
        self._on_tenant_deleted = on_tenant_deleted
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, image_id: str) -> Subscription:
        """Watch `image_id`; call from the event loop that will `wait()`."""
        subscription = Subscription(image_id, asyncio.get_running_loop())
        with self._lock:
            self._subscribers[image_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            watchers = self._subscribers.get(subscription.image_id)
            if watchers is not None:
                watchers.discard(subscription)
                if not watchers:
                    del self._subscribers[subscription.image_id]

    def publish(self, image_id: str) -> None:
        with self._lock:
            watchers = list(self._subscribers.get(image_id, ()))
        for subscription in watchers:
            subscription.wake()

    def _wake_all(self) -> None:
        with self._lock:
            watchers = [s for group in self._subscribers.values() for s in group]
        for subscription in watchers:
            subscription.wake()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="status-hub", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._database_url, autocommit=True, connect_timeout=5
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {TENANT_CHANNEL}")
                    self._wake_all()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            if notify.channel == TENANT_CHANNEL:
                                if self._on_tenant_deleted is not None:
                                    self._on_tenant_deleted(notify.payload)
                            else:
                                self.publish(notify.payload)
            except Exception as exc:  # log, reconnect; never let the thread die
                log.warning("status hub: %s: %s; reconnecting", type(exc).__name__, exc)
                self._stop.wait(self._reconnect_delay)

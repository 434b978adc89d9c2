"""Status change fan-out for WebSockets, and tenant changes: one listening connection per
process.

A trigger on the images table notifies ``deeplens_image`` with the image id whenever an image's
status changes. A background thread listens and wakes the sockets that watch that id; each socket
then reads the status itself (through the pool). Wake-ups coalesce, so a burst of changes costs
one read, and a socket whose image does not change costs none: sockets don't poll. So that no
change goes unseen, every subscriber is woken after a reconnect (changes may have been missed),
and TCP keepalives make a connection that silently died fail, and so reconnect, within a minute.

The same connection listens on ``deeplens_tenant``, where the id of a tenant that was deleted,
lost a key or got new limits is announced, and hands it to ``on_tenant_changed`` (the API forgets
the tenant's cached keys: several API processes each keep their own cache). It wakes the
tenant's subscribers too: a deleted tenant's images go with it, without a status change.

A subscription has an owner (the API: the hash of the socket's key), and `subscribe` refuses an
owner past its limit, so that one key can't hold an unbounded number of sockets in a process.
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


class TooManySubscriptions(Exception):
    """The owner already holds as many subscriptions as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} at once")
        self.limit = limit


class Subscription:
    """A watcher of one image id; `wait()` returns after the image may have changed."""

    def __init__(
        self, image_id: str, tenant_id: str, owner: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.image_id = image_id
        self.tenant_id = tenant_id
        self.owner = owner
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
        on_tenant_changed: Callable[[str], None] | None = None,
    ) -> None:
        self._database_url = database_url
        self._on_tenant_changed = on_tenant_changed
        self._reconnect_delay = reconnect_delay
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._held: dict[str, int] = {}  # subscriptions per owner
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(
        self, image_id: str, tenant_id: str = "", owner: str = "", limit: int | None = None
    ) -> Subscription:
        """Watch `image_id` of `tenant_id` for `owner`, who may hold at most `limit`
        subscriptions at once (`TooManySubscriptions` past it); call from the event loop that
        will `wait()`."""
        subscription = Subscription(image_id, tenant_id, owner, asyncio.get_running_loop())
        with self._lock:
            held = self._held.get(owner, 0)
            if limit is not None and held >= limit:
                raise TooManySubscriptions(limit)
            self._held[owner] = held + 1
            self._subscribers[image_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop watching; gives the owner's place back (once, however often it is called)."""
        with self._lock:
            watchers = self._subscribers.get(subscription.image_id)
            if watchers is None or subscription not in watchers:
                return
            watchers.discard(subscription)
            if not watchers:
                del self._subscribers[subscription.image_id]
            held = self._held[subscription.owner] - 1
            if held:
                self._held[subscription.owner] = held
            else:
                del self._held[subscription.owner]

    def publish(self, image_id: str) -> None:
        with self._lock:
            watchers = list(self._subscribers.get(image_id, ()))
        for subscription in watchers:
            subscription.wake()

    def _wake_all(self, tenant_id: str | None = None) -> None:
        """Wake every subscriber, or those of `tenant_id`."""
        with self._lock:
            watchers = [
                s
                for group in self._subscribers.values()
                for s in group
                if tenant_id is None or s.tenant_id == tenant_id
            ]
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
                # TCP keepalives: a server gone without a word (a dropped network path) is
                # noticed after about 30 + 3 * 10 seconds, and the connection made again.
                with psycopg.connect(
                    self._database_url,
                    autocommit=True,
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {TENANT_CHANNEL}")
                    self._wake_all()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            if notify.channel == TENANT_CHANNEL:
                                if self._on_tenant_changed is not None:
                                    self._on_tenant_changed(notify.payload)
                                self._wake_all(notify.payload)
                            else:
                                self.publish(notify.payload)
            except Exception as exc:  # log, reconnect; never let the thread die
                log.warning("status hub: %s: %s; reconnecting", type(exc).__name__, exc)
                self._stop.wait(self._reconnect_delay)

"""One writer for a SQLite store that several worker processes share (`reproduce --jobs N` without a server).

SQLite takes one writer at a time, and MLflow's SQLite store does not wait long for the lock: worker
processes writing to one database at once fail with "database is locked" (and race on its schema when it
is new). So under `--jobs N` on a SQLite store the workers do not open the database: each gets a
`RelayedClient`, an `MlflowClient` look-alike that sends every call (method name and arguments) to one
`Relay` in the parent's manager process, which runs the calls one at a time on the only client there is.
Calls are synchronous and return what MLflow returns (runs, pages, histories) or raise what it raises, so
the claim protocol, the heartbeats and the run lifecycle work unchanged. The volume is small: metrics
travel in batches every few seconds (mlhw.lifecycle.FLUSH_SECONDS), not one call per value.
"""

from __future__ import annotations

import contextlib
import threading
from multiprocessing.managers import SyncManager


class Relay:
    """Lives in the manager process; its lock makes the workers one writer (the manager serves each worker's
    connection on a thread of its own). The parent's own few writes (the suite parent runs, their heartbeats) go
    to the database directly and wait on SQLite's busy timeout."""

    def __init__(self, uri: str):
        self._uri = uri
        self._client = None
        self._lock = threading.Lock()

    def call(self, method: str, args: tuple, kwargs: dict):
        with self._lock:
            if self._client is None:  # imported here: the manager starts at once, MLflow loads on the first call
                from mlhw.store import client_uri, new_client  # new_client quiets MLflow's logging

                self._client = new_client(client_uri(self._uri))
            return getattr(self._client, method)(*args, **kwargs)


class RelayManager(SyncManager):
    """The SyncManager that --jobs starts anyway (for its event queue), able to host a Relay too."""


RelayManager.register("Relay", Relay)


class RelayedClient:
    """What a worker uses as `store.client`: attribute access gives a function that runs in the relay."""

    def __init__(self, relay):
        self._relay = relay  # a manager proxy: picklable, one connection per thread of the worker

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs):
            try:
                return self._relay.call(name, args, kwargs)
            except BaseException as err:
                if not isinstance(err, Exception):  # Ctrl-C or SIGTERM between sending a call and its answer:
                    self._reconnect()  # that answer would be read as the next call's; a new connection has none
                raise

        call.__name__ = name
        return call

    def _reconnect(self) -> None:
        with contextlib.suppress(AttributeError):
            del self._relay._tls.connection  # a manager proxy keeps one per thread and opens it at the next call

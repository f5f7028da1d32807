"""A rollout's shadow copies, scored together on a timer instead of one hand-off per request.

Handing each copy to its version's batcher woke a model thread once per request, and every
wake-up took the GIL from the event loop that answers the primary requests: +20-30% p50 at
concurrency 8 even with idle cores (benchmarks/README.md). Here a copy is appended to a deque
(no wake-up), and one thread wakes every `period_s`, scores what accumulated with one model call
per version and signature (up to `max_batch` examples each, merged as the batcher merges), and
settles each copy's future.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import Future

from serving.batching import OverloadedError, Task, execute


class ShadowQueue:
    def __init__(self, period_s: float = 0.02, max_batch: int = 64, max_queued: int = 4096):
        self.period_s, self.max_batch, self.max_queued = period_s, max_batch, max_queued
        self._copies: collections.deque[tuple[object, Task]] = collections.deque()
        self._lock = threading.Lock()
        self._queued = 0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def put(self, loaded, signature: str, examples: list[bytes]) -> Future:
        """Queue a copy for `loaded` (a serving.versions.Loaded); its future is settled on the
        queue's thread. Raises OverloadedError when `max_queued` examples already wait (the
        shadow cannot keep up, so copies are shed rather than memory grown)."""
        future: Future = Future()
        with self._lock:
            if self._closed.is_set():
                raise OverloadedError("the server is stopping")
            if self._queued + len(examples) > self.max_queued:
                raise OverloadedError(f"{self._queued} shadow examples are waiting for the model")
            self._queued += len(examples)
            if self._thread is None:  # a server without a shadow never starts one
                self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
                self._thread.start()
            self._copies.append((loaded, Task(signature, examples, future)))  # before a close
        return future

    def close(self) -> None:
        """Score what is queued, then stop."""
        with self._lock:
            self._closed.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _loop(self) -> None:
        while not self._closed.wait(self.period_s):
            self._drain()
        self._drain()

    def _drain(self) -> None:
        groups: dict[tuple[int, str], tuple[object, list[Task]]] = {}
        while self._copies:
            loaded, task = self._copies.popleft()
            with self._lock:
                self._queued -= len(task.examples)
            groups.setdefault((id(loaded), task.signature), (loaded, []))[1].append(task)
        for loaded, tasks in groups.values():
            chunk, size = [], 0
            for task in tasks:
                if chunk and size + len(task.examples) > self.max_batch:
                    execute(loaded.servable.run, chunk)
                    chunk, size = [], 0
                chunk.append(task)
                size += len(task.examples)
            execute(loaded.servable.run, chunk)

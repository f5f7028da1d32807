"""A rollout's shadow copies, scored together on a timer instead of one hand-off per request.

Handing each copy to its version's batcher woke a model thread once per request, and every
wake-up took the GIL from the event loop that answers the primary requests: +20-30% p50 at
concurrency 8 even with idle cores (benchmarks/README.md). Here a copy is appended to a deque
(no wake-up), and one thread wakes every `period_s`, scores what accumulated with one model call
per version and signature (up to `max_batch` examples each), and hands each copy its answer.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from serving.batching import OverloadedError

log = logging.getLogger("serving")


@dataclass
class _Copy:
    loaded: object  # serving.versions.Loaded: its servable scores the copy
    signature: str
    examples: list[bytes]
    done: Callable[[Future], None]  # called on the queue's thread with the answer or the error


class ShadowQueue:
    def __init__(self, period_s: float = 0.02, max_batch: int = 64, max_queued: int = 4096):
        self.period_s, self.max_batch, self.max_queued = period_s, max_batch, max_queued
        self._copies: collections.deque[_Copy] = collections.deque()
        self._lock = threading.Lock()
        self._queued = 0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def put(self, loaded, signature: str, examples: list[bytes], done) -> None:
        """Queue a copy; raises OverloadedError when `max_queued` examples already wait (the
        shadow cannot keep up, so copies are shed rather than memory grown)."""
        with self._lock:
            if self._closed.is_set():
                raise OverloadedError("the server is stopping")
            if self._queued + len(examples) > self.max_queued:
                raise OverloadedError(f"{self._queued} shadow examples are waiting for the model")
            self._queued += len(examples)
            if self._thread is None:  # a server without a shadow never starts one
                self._thread = threading.Thread(target=self._loop, name="shadow", daemon=True)
                self._thread.start()
            self._copies.append(_Copy(loaded, signature, examples, done))  # before a close's drain

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
        groups: dict[tuple[int, str], list[_Copy]] = {}
        while self._copies:
            copy = self._copies.popleft()
            with self._lock:
                self._queued -= len(copy.examples)
            groups.setdefault((id(copy.loaded), copy.signature), []).append(copy)
        for copies in groups.values():
            chunk, size = [], 0
            for copy in copies:
                if chunk and size + len(copy.examples) > self.max_batch:
                    self._score(chunk)
                    chunk, size = [], 0
                chunk.append(copy)
                size += len(copy.examples)
            self._score(chunk)

    def _score(self, chunk: list[_Copy]) -> None:
        examples = [e for copy in chunk for e in copy.examples]
        try:
            outputs = chunk[0].loaded.servable.run(chunk[0].signature, examples)
        except Exception as error:
            if len(chunk) > 1:  # one bad copy must not fail the others merged with it
                for copy in chunk:
                    self._score([copy])
                return
            _finish(chunk[0], error=error)
            return
        start = 0
        for copy in chunk:
            end = start + len(copy.examples)
            _finish(copy, {name: value[start:end] for name, value in outputs.items()})
            start = end


def _finish(copy: _Copy, outputs: dict | None = None, error: BaseException | None = None) -> None:
    future: Future = Future()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(outputs)
    try:
        copy.done(future)
    except Exception:  # a callback's failure must not stop the copies after it
        log.exception("a shadow copy's answer could not be handled")

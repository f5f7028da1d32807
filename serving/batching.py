"""Model calls on worker threads, with concurrent requests merged into one call.

Each loaded version has one Batcher. A worker takes the oldest queued request and adds whatever
else is already queued (up to max_batch_size examples; waiting at most batch_timeout for more),
runs the model once, and hands each request its slice of the outputs. A request never waits for
company when the queue is empty (batch_timeout 0), so batching only changes anything under load.
Closing a Batcher finishes what is queued: an unloaded version answers its last requests.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("serving")
Outputs = dict[str, np.ndarray]


class ClosedError(Exception):
    """The version is being unloaded; the caller resolves the version again."""


class OverloadedError(Exception):
    pass


@dataclass
class Task:
    signature: str
    examples: list[bytes]
    future: Future


_STOP = object()


class Batcher:
    def __init__(
        self,
        run: Callable[[str, list[bytes]], Outputs],
        max_batch_size: int = 64,
        batch_timeout_s: float = 0.0,
        max_queued_examples: int = 4096,
        threads: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._run, self._max, self._timeout = run, max_batch_size, batch_timeout_s
        self._max_queued, self._on_batch = max_queued_examples, on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._closed = False
        self._workers = [
            threading.Thread(target=self._work, name=f"model-{i}", daemon=True)
            for i in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, signature: str, examples: list[bytes]) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise ClosedError()
            if self._queued and self._queued + len(examples) > self._max_queued:
                raise OverloadedError(f"{self._queued} examples are waiting for the model")
            self._queued += len(examples)
            self._queue.put(Task(signature, examples, future))
        return future

    def close(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._workers:
                self._queue.put(_STOP)
        if wait:
            for worker in self._workers:
                worker.join()

    def _next(self, block: bool, timeout: float | None = None):
        try:
            return self._queue.get(block, timeout)
        except queue.Empty:
            return None

    def _work(self) -> None:
        carried = None
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is _STOP:
                return
            tasks, size = [first], len(first.examples)
            deadline = time.monotonic() + self._timeout
            while size < self._max:
                remaining = deadline - time.monotonic()
                task = self._next(remaining > 0, remaining if remaining > 0 else None)
                if task is None:
                    break
                if task is _STOP or task.signature != first.signature:
                    carried = task
                    break
                if size + len(task.examples) > self._max:
                    carried = task
                    break
                tasks.append(task)
                size += len(task.examples)
            with self._lock:
                self._queued -= size
            execute(self._run, tasks, self._on_batch)


def execute(
    run: Callable[[str, list[bytes]], Outputs],
    tasks: list[Task],
    on_batch: Callable[[int], None] | None = None,
) -> None:
    """One model call on the tasks' examples, each task's future given its slice of the outputs
    (the shadow queue merges its copies the same way)."""
    examples = [e for task in tasks for e in task.examples]
    try:
        outputs = run(tasks[0].signature, examples)
        if len(tasks) > 1 and any(
            np.ndim(v) == 0 or len(v) != len(examples) for v in outputs.values()
        ):
            raise ValueError("outputs without a batch dimension cannot be split")
    except Exception as error:  # one bad request must not fail the others merged with it
        if len(tasks) == 1:
            tasks[0].future.set_exception(error)
            return
        for task in tasks:
            execute(run, [task], on_batch)
        return
    if on_batch:
        on_batch(len(examples))
    start = 0
    for task in tasks:
        end = start + len(task.examples)
        if len(tasks) == 1:
            task.future.set_result(outputs)
        else:
            task.future.set_result({name: value[start:end] for name, value in outputs.items()})
        start = end

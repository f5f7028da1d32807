"""The shadow queue: copies wait for the timer, are scored together, a bad copy fails alone."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from serving.batching import OverloadedError
from serving.shadow_queue import ShadowQueue


def fake_loaded(calls: list) -> SimpleNamespace:
    def run(signature: str, examples: list[bytes]) -> dict:
        calls.append((signature, len(examples)))
        if b"bad" in examples:
            raise ValueError("cannot parse")
        return {"y": np.array([int(e) for e in examples])}

    return SimpleNamespace(servable=SimpleNamespace(run=run))


def collect(answers: dict, key, done: threading.Event | None = None):
    def callback(future) -> None:
        answers[key] = future.exception() or future.result()["y"].tolist()
        if done is not None:
            done.set()

    return callback


def test_copies_wait_for_the_timer_and_are_scored_in_one_call_each_getting_its_slice():
    calls: list = []
    loaded, answers = fake_loaded(calls), {}
    queue = ShadowQueue(period_s=0.3, max_batch=64)
    for i in range(3):
        copy = queue.put(loaded, "s", [str(i).encode(), str(10 + i).encode()])
        copy.add_done_callback(collect(answers, i))
    time.sleep(0.05)
    assert calls == []  # nothing woke for the copies
    queue.close()
    assert calls == [("s", 6)]
    assert answers == {0: [0, 10], 1: [1, 11], 2: [2, 12]}


def test_calls_hold_at_most_max_batch_examples_and_never_mix_versions_or_signatures():
    calls_a: list = []
    calls_b: list = []
    a, b, answers = fake_loaded(calls_a), fake_loaded(calls_b), {}
    queue = ShadowQueue(period_s=10, max_batch=4)
    for i in range(5):
        queue.put(a, "s", [b"1", b"2"]).add_done_callback(collect(answers, ("a", i)))
    queue.put(a, "other", [b"3"]).add_done_callback(collect(answers, "other"))
    queue.put(b, "s", [b"4"]).add_done_callback(collect(answers, "b"))
    queue.close()
    assert calls_a == [("s", 4), ("s", 4), ("s", 2), ("other", 1)]
    assert calls_b == [("s", 1)]
    assert len(answers) == 7 and answers["b"] == [4]


def test_a_bad_copy_fails_alone():
    calls: list = []
    loaded, answers = fake_loaded(calls), {}
    queue = ShadowQueue(period_s=10)
    queue.put(loaded, "s", [b"1"]).add_done_callback(collect(answers, "good"))
    queue.put(loaded, "s", [b"bad"]).add_done_callback(collect(answers, "bad"))
    queue.close()
    assert answers["good"] == [1]
    assert isinstance(answers["bad"], ValueError)


def test_a_full_queue_sheds_copies_and_a_closed_one_takes_none():
    loaded = fake_loaded([])
    queue = ShadowQueue(period_s=10, max_queued=3)
    queue.put(loaded, "s", [b"1", b"2"])
    with pytest.raises(OverloadedError, match="2 shadow examples are waiting"):
        queue.put(loaded, "s", [b"3", b"4"])
    queue.close()
    with pytest.raises(OverloadedError, match="stopping"):
        queue.put(loaded, "s", [b"5"])


def test_the_timer_scores_without_close():
    loaded, answers, done = fake_loaded([]), {}, threading.Event()
    queue = ShadowQueue(period_s=0.01)
    queue.put(loaded, "s", [b"7"]).add_done_callback(collect(answers, "x", done))
    assert done.wait(5) and answers == {"x": [7]}
    queue.close()

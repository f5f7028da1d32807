"""Dynamic batching: concurrent requests merge into one model call, and fail alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serving.batching import Batcher, ClosedError, OverloadedError


class SlowModel:
    """Doubles its inputs; the first call waits until released, so that others queue up."""

    def __init__(self) -> None:
        self.release, self.entered = threading.Event(), threading.Event()
        self.calls: list[int] = []

    def __call__(self, signature: str, examples: list[bytes]) -> dict:
        if not self.calls:
            self.entered.set()
            self.release.wait(5)
        self.calls.append(len(examples))
        if b"bad" in examples:
            raise ValueError("bad example")
        return {"y": np.array([2 * int(e) for e in examples]), "n": np.arange(len(examples))}


def test_queued_requests_run_as_one_call_and_get_their_own_slices():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=8)
    first = batcher.submit("s", [b"1"])
    assert model.entered.wait(5)  # the model is busy: what comes now has to queue
    queued = [batcher.submit("s", [str(i).encode(), b"100"]) for i in range(3)]
    model.release.set()
    assert first.result(5)["y"].tolist() == [2]
    assert [f.result(5)["y"].tolist() for f in queued] == [[0, 200], [2, 200], [4, 200]]
    assert model.calls == [1, 6]  # the three queued requests in one call
    batcher.close()


def test_a_bad_request_fails_alone_and_batches_respect_the_size_limit():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=3)
    first = batcher.submit("s", [b"1"])
    assert model.entered.wait(5)
    good, bad, other = (batcher.submit("s", e) for e in ([b"2"], [b"bad"], [b"3", b"4"]))
    model.release.set()
    first.result(5)
    assert good.result(5)["y"].tolist() == [4]
    with pytest.raises(ValueError):
        bad.result(5)
    assert other.result(5)["y"].tolist() == [6, 8]
    assert max(model.calls) <= 3
    batcher.close()


def test_close_answers_what_is_queued_then_refuses():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=1)
    pending = [batcher.submit("s", [b"5"]) for _ in range(3)]
    model.release.set()
    batcher.close()
    assert all(f.result(0)["y"].tolist() == [10] for f in pending)
    with pytest.raises(ClosedError):
        batcher.submit("s", [b"1"])


def test_a_full_queue_refuses_new_work():
    model = SlowModel()
    batcher = Batcher(model, max_batch_size=1, max_queued_examples=4)
    accepted = [batcher.submit("s", [b"1", b"1"]) for _ in range(2)]
    with pytest.raises(OverloadedError):
        batcher.submit("s", [b"1"] * 3)
    model.release.set()
    assert [f.result(5)["y"].tolist() for f in accepted] == [[2, 2], [2, 2]]
    batcher.close()


def test_requests_past_the_in_flight_limit_get_503():
    from serving.errors import ServingError
    from serving.metrics import Metrics
    from serving.service import PredictService

    service = PredictService(manager=None, request_log=None, metrics=Metrics(), max_in_flight=2)
    service.admit()
    service.admit()
    with pytest.raises(ServingError) as raised:
        service.admit()
    assert raised.value.http_status == 503 and "overloaded" in raised.value.message
    service.release()
    service.admit()  # room again

"""What a predict request goes through, whichever protocol brought it.

admit (overload check) -> find the model version -> check the examples -> route them (a
rollout's split, serving.routing) -> queue them for the model (and a shadow copy) -> log the
answer -> answer. The REST handlers await the two futures on the event loop; the gRPC handlers
block on them in their worker threads.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import grpc

from serving import request_examples
from serving.batching import ClosedError, OverloadedError
from serving.errors import ServingError, invalid, overloaded
from serving.metrics import Metrics
from serving.request_log import Entry, RequestLog
from serving.rollout import DEFAULT, EXPLICIT, SPLIT
from serving.routing import Router, Routes, Shadows, assign
from serving.servable import DEFAULT_SIGNATURE, Signature
from serving.shadow_queue import ShadowQueue
from serving.versions import Loaded, ModelManager

log = logging.getLogger("serving")
NOISE = ("Graph execution error", "Detected at node", "<stack traces", "[[", "Traceback")


def model_error_message(error: Exception) -> str:
    """The useful line of a TensorFlow error, without graph or stack noise."""
    lines = [line.strip() for line in str(getattr(error, "message", error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(NOISE)]
    return useful[0][:500] if useful else "the model could not run on this input"


def bearer_token_matches(header: str, token: str) -> bool:
    """Whether an Authorization value carries the token: the scheme is case-insensitive (RFC 7235,
    RFC 6750), the token is compared in constant time."""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credentials.lstrip(" ").encode(), token.encode())


@dataclass
class Call:
    """One admitted predict request."""

    request_id: str
    protocol: str
    received: float  # epoch seconds
    started: float  # perf_counter
    model: str
    loaded: Loaded
    label: str | None
    signature: Signature
    version: int | None
    batch: request_examples.Batch | None = None
    assignment: str = DEFAULT  # split, explicit or default (serving.rollout)
    arm: str | None = None  # the label it was assigned to
    routes: Routes | None = None  # the rollout it was split by (its shadow follows the same)
    key: str = ""  # what the split hashed: the first example's complaint_id, else request_id
    # Parses the request again, for a version whose signature reads examples differently.
    source: Callable[[Signature], request_examples.Batch] | None = None


class PredictService:
    def __init__(
        self,
        manager: ModelManager,
        request_log: RequestLog | None,
        metrics: Metrics,
        max_instances: int = 1024,
        max_in_flight: int = 512,
        router: Router | None = None,
        shadow_queue: ShadowQueue | None = None,
    ):
        self.manager, self.request_log, self.metrics = manager, request_log, metrics
        self.router = router or Router(manager)
        self.shadows = Shadows(self.router, request_log, metrics, shadow_queue)
        self.max_instances, self.max_in_flight = max_instances, max_in_flight
        self._in_flight = 0
        self._lock = threading.Lock()

    def admit(self) -> None:
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                raise overloaded(
                    f"the server is overloaded ({self._in_flight} requests in flight); retry later"
                )
            self._in_flight += 1
        self.metrics.in_flight.inc()

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1
        self.metrics.in_flight.dec()

    def begin(
        self,
        request_id: str,
        protocol: str,
        model: str,
        version: int | None,
        label: str | None,
        signature_name: str | None,
    ) -> Call:
        loaded, label = self.manager.model(model).resolve(version, label)
        name = signature_name or DEFAULT_SIGNATURE
        try:
            signature = loaded.servable.signature(name)
        except KeyError:
            raise invalid(f"Serving signature name: '{name}' not found in signature def") from None
        if signature.input_name is None:
            raise invalid(
                f"signature '{name}' does not take serialized tf.Examples; this server serves "
                "only signatures whose one input is a string tensor of them"
            )
        explicit = version is not None or label is not None
        return Call(
            request_id,
            protocol,
            time.time(),
            time.perf_counter(),
            model,
            loaded,
            label,
            signature,
            version,
            assignment=EXPLICIT if explicit else DEFAULT,
            arm=label,
        )

    def parse_json(self, call: Call, body) -> None:
        call.source = lambda signature: request_examples.parse_predict(
            body, signature, self.max_instances
        )
        call.batch = call.source(call.signature)
        assign(self.router, call)

    def parse_serialized(self, call: Call, serialized: list[bytes]) -> None:
        call.source = lambda signature: request_examples.parse_serialized(
            serialized, signature, self.max_instances
        )
        call.batch = call.source(call.signature)
        assign(self.router, call)

    def submit(self, call: Call) -> Future:
        """Queue the examples for the model; a version being unloaded hands over to the next."""
        for _ in range(5):
            try:
                return call.loaded.batcher.submit(call.signature.name, call.batch.serialized)
            except ClosedError:
                if call.assignment == EXPLICIT:
                    break
                if call.assignment == SPLIT:
                    call.loaded = self.router.loaded(call.model, call.routes, call.arm)
                else:
                    call.loaded, _ = self.manager.model(call.model).resolve(None, None)
            except OverloadedError as error:
                raise overloaded(f"the server is overloaded: {error}; retry later") from None
        raise ServingError(grpc.StatusCode.UNAVAILABLE, "the model version was unloaded; retry")

    def submit_logged(self, call: Call) -> Future:
        """One future for the whole request: it resolves with the outputs once they are logged.

        The steps after the model chain on the model and log threads, so the caller's thread
        (the event loop, for REST) is woken once per request instead of twice.
        """
        done: Future = Future()

        def after_log(logged: Future, outputs: dict) -> None:
            try:
                self.logged_or_error(logged)
            except ServingError as error:
                done.set_exception(error)
                return
            done.set_result(outputs)

        def after_model(model_future: Future) -> None:
            try:
                outputs = self.outputs_or_error(model_future)
                logged = self.log_entry(call, outputs)
            except ServingError as error:
                done.set_exception(error)
                return
            if logged is None:
                done.set_result(outputs)
            else:
                logged.add_done_callback(lambda f: after_log(f, outputs))

        self.submit(call).add_done_callback(after_model)
        self.shadows.submit(call)  # after the primary is queued: it never waits for the copy
        return done

    def outputs_or_error(self, future: Future) -> dict:
        error = future.exception()
        if error is None:
            return future.result()
        if type(error).__name__ == "InvalidArgumentError":  # tf.errors, without importing TF here
            raise invalid(model_error_message(error))
        log.error("model call failed", exc_info=error)
        raise ServingError(grpc.StatusCode.INTERNAL, "the model failed on this request")

    def log_entry(self, call: Call, outputs: dict) -> Future | None:
        """Queue the request log record; None when logging is off."""
        self.metrics.examples.labels(call.model, str(call.loaded.servable.version)).inc(
            len(call.batch.serialized)
        )
        if call.batch.unknown:
            self.metrics.unknown_features.labels(call.model).inc()
        if self.request_log is None:
            return None
        entry = Entry(
            request_id=call.request_id,
            received=call.received,
            model_name=call.model,
            version=call.loaded.servable.version,
            label=call.label,
            protocol=call.protocol,
            signature=call.signature.name,
            examples=call.batch.examples,
            known=set(call.signature.features) or None,
            unknown=call.batch.unknown,
            outputs=outputs,
            latency_ms=(time.perf_counter() - call.started) * 1000,
            arm=call.arm,
            assignment=call.assignment,
        )
        return self.request_log.append(entry)

    @staticmethod
    def logged_or_error(future: Future | None) -> None:
        if future is not None and future.exception() is not None:
            raise ServingError(
                grpc.StatusCode.UNAVAILABLE, "the request log is unavailable; nothing was served"
            )

    def observe(
        self,
        protocol: str,
        api: str,
        code: int | str,
        model: str,
        version: str,
        started: float,
        arm: str = "",
    ) -> None:
        if model not in self.manager.models:  # a client's typo must not grow the metrics
            model = "(unknown)"
        elif arm and arm not in self.manager.models[model].settings.labels:
            arm = "(unknown)"  # nor a label named in a URL that the config does not have
        self.metrics.requests.labels(protocol, api, str(code), model, version, arm).inc()
        self.metrics.latency.labels(protocol, api).observe(time.perf_counter() - started)

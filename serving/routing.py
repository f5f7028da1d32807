"""Which version answers a request, and which scores a shadow copy of it: the rollout applied.

A request that names a version or a label is served by it (assignment "explicit"). Otherwise,
with a rollout for its model, the request goes to the arm `rollout.arm(key)` ("split"), key being
the complaint_id of its first example, else the request id; without a rollout, to the latest
version ("default"). When the rollout has a shadow and `rollout.shadows(key)`, a split or
default request's examples are also queued for the shadow label's version (serving.shadow_queue);
that answer is only logged (shadow=1), and the primary answer never waits for it.

The rollout and the labels it was checked against are one snapshot (Routes), replaced whole by
a reload and read without a lock: a request never pairs a new rollout with old labels. A reload
reads the model config and the rollout file, checks them together and applies both or neither.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import grpc

from serving.errors import ServingError
from serving.metrics import Metrics
from serving.request_log import Entry, RequestLog, complaint_id
from serving.rollout import DEFAULT, EXPLICIT, SHADOW, SPLIT, Rollout, RolloutError
from serving.servable import Signature
from serving.shadow_queue import ShadowQueue
from serving.versions import Loaded, ModelManager, ModelSettings, read_model_config

log = logging.getLogger("serving")
WARNING_EVERY_S = 60.0  # a shadow failing on every request gets one log line a minute


@dataclass(frozen=True)
class Routes:
    rollouts: dict[str, Rollout] = field(default_factory=dict)  # by model name
    labels: dict[str, dict[str, int]] = field(default_factory=dict)  # {model: {label: version}}


def same_inputs(one: Signature, other: Signature) -> bool:
    """Whether examples checked for one signature are what the other parses, unchanged."""
    return one is other or (one.input_name, one.features) == (other.input_name, other.features)


class Router:
    def __init__(self, manager: ModelManager, rollout_file: str = "", model_config_file: str = ""):
        self.manager, self.rollout_file = manager, rollout_file
        self.model_config_file = model_config_file
        self.routes = Routes()
        self.on_change = lambda routes: None  # metrics of the rollout in force
        self._lock = threading.Lock()  # one reload at a time

    def _labels(self, settings: list[ModelSettings] | None = None) -> dict[str, dict[str, int]]:
        labels = {name: dict(model.settings.labels) for name, model in self.manager.models.items()}
        labels.update({new.name: dict(new.labels) for new in settings or []})
        return labels

    def _read(self, labels: dict[str, dict[str, int]]) -> Routes:
        """The rollout file checked against these labels; RolloutError, one line, if it does
        not fit them."""
        if not self.rollout_file:
            return Routes({}, labels)
        where = f"--rollout_file {self.rollout_file}"
        if not self.model_config_file:
            raise RolloutError(
                f"{where}: a rollout names version labels, which only a --model_config_file "
                "has; give one"
            )
        rollout = Rollout.read(self.rollout_file)
        problems = rollout.problems(labels, where)
        if problems:
            raise RolloutError(problems[0])
        return Routes({rollout.model: rollout}, labels)

    def start(self) -> None:
        """Read the rollout before any version loads; RolloutError when it does not fit."""
        self.routes = self._read(self._labels())
        self.on_change(self.routes)

    def reload(self, settings: list[ModelSettings] | None = None) -> None:
        """Re-read the model config (unless given, as gRPC's ReloadConfig gives it) and the
        rollout; apply both or neither (ServingError, one line, when refused)."""
        with self._lock:
            if settings is None and self.model_config_file:
                try:
                    settings = read_model_config(self.model_config_file)
                except ServingError as error:
                    raise ServingError(
                        error.code, f"{error.message}; the models served are unchanged"
                    ) from None
            try:
                routes = self._read(self._labels(settings))
            except RolloutError as error:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"{error}; nothing changed"
                ) from None
            if settings is None:
                self.manager.poll()
            else:
                self.manager.reload(settings)  # refuses (and reverts) labels of unloaded versions
            # Until this line, split requests follow the old rollout with the old labels'
            # versions, still loaded: no request fails in between.
            self.routes = routes
            self.on_change(routes)
            if self.rollout_file:
                log.info("rollout in force: %s", [r.to_json() for r in routes.rollouts.values()])

    def loaded(self, model: str, routes: Routes, label: str) -> Loaded:
        """The version a label named when these routes were read; if a reload has unloaded it
        meanwhile, the label's version now."""
        found = self.manager.model(model)
        loaded = found.available.get(routes.labels[model][label])
        return loaded if loaded is not None else found.resolve(None, label)[0]


class Shadows:
    """Copies of requests scored by a shadow version: logged, counted, never answered."""

    def __init__(
        self,
        router: Router,
        request_log: RequestLog | None,
        metrics: Metrics,
        queue: ShadowQueue | None = None,
    ):
        self.router, self.request_log, self.metrics = router, request_log, metrics
        self.queue = queue or ShadowQueue()
        self._lock = threading.Lock()
        self._failures, self._next_warning = 0, 0.0

    def submit(self, call) -> None:
        """Queue a copy of the call's examples on the shadow version, if the rollout says so.
        Never raises and never blocks on the model: the primary answer does not wait."""
        rollout = call.routes.rollouts.get(call.model) if call.routes else None
        if rollout is None or rollout.shadow is None or call.assignment not in (SPLIT, DEFAULT):
            return
        if not rollout.shadows(call.key):
            return
        started, label = time.perf_counter(), rollout.shadow
        version = call.routes.labels[call.model].get(label, "")
        try:
            loaded = self.router.loaded(call.model, call.routes, label)
            version = loaded.servable.version
            if loaded is call.loaded:  # the shadow's version answered: a copy compares nothing
                return
            signature = loaded.servable.signature(call.signature.name)
            batch = call.batch if same_inputs(signature, call.signature) else call.source(signature)
            future = self.queue.put(loaded, signature.name, batch.serialized)
        except Exception as error:  # the shadow's problem, never the primary's
            self._failed(call.model, version, error)
            return
        future.add_done_callback(
            lambda done: self._scored(call, label, loaded, signature, batch, started, done)
        )

    def _scored(self, call, label, loaded, signature, batch, started, future) -> None:
        version = loaded.servable.version
        if future.exception() is not None:
            self._failed(call.model, version, future.exception())
            return
        if self.request_log is None:
            self.metrics.shadow.labels(call.model, str(version), "ok").inc()
            return
        entry = Entry(
            request_id=call.request_id,
            received=call.received,
            model_name=call.model,
            version=version,
            label=None,  # the client named no label: it was not even asked
            protocol=call.protocol,
            signature=signature.name,
            examples=batch.examples,
            known=set(signature.features) or None,
            unknown=batch.unknown,
            outputs=future.result(),
            latency_ms=(time.perf_counter() - started) * 1000,
            arm=label,
            assignment=SHADOW,
            shadow=True,
        )
        self.request_log.append(entry).add_done_callback(
            lambda logged: self._logged(call.model, version, logged)
        )

    def _logged(self, model: str, version: int, logged) -> None:
        if logged.exception() is not None:
            self._failed(model, version, logged.exception())
        else:
            self.metrics.shadow.labels(model, str(version), "ok").inc()

    def _failed(self, model: str, version, error: BaseException) -> None:
        self.metrics.shadow.labels(model, str(version), "failed").inc()
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if now < self._next_warning:
                return
            count, self._failures = self._failures, 0
            self._next_warning = now + WARNING_EVERY_S
        reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
        log.warning(
            "shadow of model %s version %s failed: %s (%d failure(s) since the last such line; "
            'serving_shadow_predictions_total{outcome="failed"} counts them); primary answers '
            "are unaffected",
            model,
            version,
            reason,
            count,
        )


def assign(router: Router, call) -> None:
    """Route a parsed request (see the module docstring), moving it to its arm's version.

    A request of several examples is one arm, chosen by its first example: one model call and
    one answer per request, never an answer stitched from two versions. So stickiness by
    complaint id holds for the first complaint of each request; clients that batch complaints
    get the whole batch scored by the first one's version.
    """
    if call.assignment == EXPLICIT:
        return
    routes = router.routes
    rollout = routes.rollouts.get(call.model)
    if rollout is None:
        return
    call.routes = routes
    call.key = complaint_id(call.batch.examples[0]) or call.request_id
    call.arm = rollout.arm(call.key)  # version_label stays what the client named: none
    call.assignment = SPLIT
    move(call, router.loaded(call.model, routes, call.arm))


def move(call, loaded: Loaded) -> None:
    """Serve the call by another version; its examples are parsed again only if that version's
    signature reads them differently."""
    if loaded is call.loaded:
        return
    try:
        signature = loaded.servable.signature(call.signature.name)
    except KeyError:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Serving signature name: '{call.signature.name}' not found in signature def of "
            f"version {loaded.servable.version} ({call.arm})",
        ) from None
    if not same_inputs(signature, call.signature):
        call.batch = call.source(signature)
    call.loaded, call.signature = loaded, signature

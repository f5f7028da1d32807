"""Model versions as TF Serving handles them: discovery, version policy, labels, hot swaps.

A version is an integer folder under the model's base path (Pusher's .staging and anything
else is never loaded). Each poll loads the versions the policy wants that are not loaded yet,
fully and warmed up, then switches requests to them, then unloads the versions no longer
wanted, after their queued requests are answered. A folder that fails to load is refused and
remembered with its fingerprint (file names, sizes, times): it is tried again only once it
changes (a copy still in progress), and the versions already serving keep serving.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import grpc
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import Batcher
from serving.errors import ServingError, not_found
from serving.servable import Servable

log = logging.getLogger("serving")


@dataclass(frozen=True)
class VersionPolicy:
    kind: str = "latest"  # latest, all or specific
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def parse(cls, text: str) -> VersionPolicy:
        """'latest', 'latest:N', 'all' or 'specific:V1,V2'."""
        kind, _, values = text.partition(":")
        try:
            if kind == "latest":
                return cls("latest", int(values or 1))
            if kind == "all" and not values:
                return cls("all")
            if kind == "specific" and values:
                return cls("specific", versions=tuple(int(v) for v in values.split(",")))
        except ValueError:
            pass
        raise ValueError(f"bad version policy {text!r}: latest[:N], all or specific:V1,V2,...")

    @classmethod
    def from_proto(cls, proto) -> VersionPolicy:
        which = proto.WhichOneof("policy_choice")
        if which == "all":
            return cls("all")
        if which == "specific":
            return cls("specific", versions=tuple(proto.specific.versions))
        return cls("latest", proto.latest.num_versions or 1)

    def select(self, versions: Iterable[int]) -> set[int]:
        ordered = sorted(versions, reverse=True)
        if self.kind == "all":
            return set(ordered)
        if self.kind == "specific":
            return set(ordered) & set(self.versions)
        return set(ordered[: self.num_versions])


@dataclass
class ModelSettings:
    name: str
    base_path: str
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)


def settings_from_proto(config, base_dir: str) -> list[ModelSettings]:
    """Models of a ModelServerConfig; relative base paths are taken from base_dir."""
    return [
        ModelSettings(
            model.name,
            os.path.join(base_dir, model.base_path),
            VersionPolicy.from_proto(model.model_version_policy),
            dict(model.version_labels),
        )
        for model in config.model_config_list.config
    ]


def read_model_config(path: str) -> list[ModelSettings]:
    """TF Serving's --model_config_file (ModelServerConfig in text format), so it can be reused.

    A file that cannot be read or parsed is one FAILED_PRECONDITION line: the operator's to fix.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            config = text_format.Parse(handle.read(), model_server_config_pb2.ModelServerConfig())
    except OSError as error:
        reason = f"cannot be read: {error.strerror or error}"
    except UnicodeDecodeError:
        reason = "is not UTF-8 text"
    except text_format.ParseError as error:
        first = str(error).strip().splitlines()[0].rstrip(".")
        reason = f"not a ModelServerConfig in text format: {first}"
    else:
        return settings_from_proto(config, os.path.dirname(os.path.abspath(path)))
    raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f"--model_config_file {path}: {reason}")


def list_versions(base_path: str) -> dict[int, str]:
    """Integer-named folders under base_path: {version: path}."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return {}
    return {
        int(name): os.path.join(base_path, name)
        for name in names
        if name.isascii() and name.isdigit() and os.path.isdir(os.path.join(base_path, name))
    }


def fingerprint(path: str) -> tuple:
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            entries.append(
                (os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns)
            )
    return tuple(sorted(entries))


@dataclass
class Loaded:
    servable: Servable
    batcher: Batcher


@dataclass
class VersionState:
    state: str  # LOADING, AVAILABLE, UNLOADING or END (refused or unloaded)
    error: str = ""


BatcherFactory = Callable[[Servable], Batcher]


class Model:
    """One model name: the versions loaded for it, and how requests find one."""

    def __init__(self, settings: ModelSettings, make_batcher: BatcherFactory, on_change=None):
        self.settings = settings
        self._make_batcher, self._on_change = make_batcher, on_change or (lambda *_: None)
        self.available: dict[int, Loaded] = {}  # replaced whole on a swap, read without a lock
        self.states: dict[int, VersionState] = {}
        self._refused: dict[int, tuple] = {}  # version -> fingerprint of the refused folder
        self._lock = threading.Lock()  # one poll at a time

    @property
    def name(self) -> str:
        return self.settings.name

    def resolve(
        self, version: int | None = None, label: str | None = None
    ) -> tuple[Loaded, str | None]:
        available = self.available
        if label is not None:
            if label not in self.settings.labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = self.settings.labels[label]
        if version is None:
            if not available:
                raise not_found(f"Servable not found for request: Latest({self.name})")
            return available[max(available)], None
        if version not in available:
            raise not_found(f"Servable not found for request: Specific({self.name}, {version})")
        return available[version], label

    def poll(self) -> None:
        with self._lock:
            self._poll()

    def _loadable(self, version: int, path: str) -> bool:
        if version in self.available:
            return True
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            return False  # not a SavedModel, or one still being written: wait
        refused = self._refused.get(version)
        return refused is None or refused != fingerprint(path)

    def _poll(self) -> None:
        found = list_versions(self.settings.base_path)
        while True:
            wanted = self.settings.policy.select(
                v for v, p in found.items() if self._loadable(v, p)
            )
            missing = sorted(wanted - set(self.available), reverse=True)
            if not missing:
                break
            self._load(missing[0], found[missing[0]])  # then decide again: a refusal changes it
        for version in set(self.available) - wanted:
            self._unload(version)

    def _load(self, version: int, path: str) -> None:
        self.states[version] = VersionState("LOADING")
        log.info("model %s: loading version %d from %s", self.name, version, path)
        try:
            servable = Servable(self.name, version, path)
            calls = servable.warm_up()
            batcher = self._make_batcher(servable)
        except Exception as error:  # any broken folder: refuse it, keep serving the others
            self._refused[version] = fingerprint(path)
            reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            self.states[version] = VersionState("END", f"refused: {reason}")
            log.error(
                "model %s: version %d refused (%s); serving %s",
                self.name,
                version,
                reason,
                sorted(self.available) or "nothing",
            )
            self._on_change(self.name, sorted(self.available), version)
            return
        self._refused.pop(version, None)
        # TensorFlow leaves hundreds of thousands of long-lived objects; a full collection
        # walking them all stalls every request for a tenth of a second. Park them.
        gc.collect()
        gc.freeze()
        self.available = {**self.available, version: Loaded(servable, batcher)}
        self.states[version] = VersionState("AVAILABLE")
        log.info("model %s: version %d available (%d warm-up calls)", self.name, version, calls)
        self._on_change(self.name, sorted(self.available), None)

    def _unload(self, version: int) -> None:
        loaded = self.available[version]
        self.states[version] = VersionState("UNLOADING")
        self.available = {v: x for v, x in self.available.items() if v != version}
        loaded.batcher.close(wait=True)  # answers what was queued for this version
        del loaded
        # The version's objects were frozen out of the collector at load; its reference cycles
        # can only be freed by a full collection with everything unfrozen (one pause per swap).
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.states[version] = VersionState("END")
        log.info("model %s: version %d unloaded", self.name, version)
        self._on_change(self.name, sorted(self.available), None)

    def status(self, version: int | None = None, label: str | None = None) -> list[tuple]:
        """[(version, state, error message)] as GetModelStatus reports them."""
        if label is not None:
            if label not in self.settings.labels:
                raise not_found(f"Unrecognized servable version label: {label}")
            version = self.settings.labels[label]
        states = dict(self.states)
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {self.name}")
            states = {version: states[version]}
        elif not states:
            raise not_found(f"Could not find any versions of model {self.name}")
        return [(v, s.state, s.error) for v, s in sorted(states.items(), reverse=True)]

    def shutdown(self) -> None:
        with self._lock:
            for version in list(self.available):
                self._unload(version)


class ModelManager:
    """Every served model, and the thread that polls their folders."""

    def __init__(
        self,
        settings: list[ModelSettings],
        make_batcher: BatcherFactory,
        poll_seconds: float = 1.0,
        on_change=None,
    ):
        self.models = {s.name: Model(s, make_batcher, on_change) for s in settings}
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def model(self, name: str) -> Model:
        found = self.models.get(name)
        if found is None:
            raise not_found(f"Servable not found for request: Latest({name})")
        return found

    def poll(self) -> None:
        for model in self.models.values():
            try:
                model.poll()
            except Exception:  # a bad file system moment must not stop the polling thread
                log.exception("model %s: poll failed", model.name)

    def start(self) -> None:
        self.poll()
        if self._poll_seconds > 0:
            self._thread = threading.Thread(
                target=self._poll_loop, name="version-poll", daemon=True
            )
            self._thread.start()

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            self.poll()

    def reload(self, settings: list[ModelSettings]) -> None:
        """Apply a new config: version policies and labels of the models already served."""
        for new in settings:
            current = self.models.get(new.name)
            if current is None or os.path.abspath(new.base_path) != os.path.abspath(
                current.settings.base_path
            ):
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"model {new.name!r} with base path {new.base_path} is not served here; "
                    "adding models or moving a base path needs a restart",
                )
        previous = {new.name: self.models[new.name].settings for new in settings}
        for new in settings:
            self.models[new.name].settings = new
        self.poll()
        for new in settings:  # as TF Serving: a label may only name a version that is loaded
            missing = {
                k: v for k, v in new.labels.items() if v not in self.models[new.name].available
            }
            if missing:
                self.models[new.name].settings = previous[new.name]
                self.poll()
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"model {new.name}: labels {missing} name versions that are not loaded; "
                    "nothing changed",
                )

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        for model in self.models.values():
            model.shutdown()

"""The two files a rollout lives in, changed together or not at all: TF Serving's model config
(versions and labels, text format) and the rollout file beside it (serving/rollout.py).

A change is computed in memory, checked as the server checks it (Rollout.problems), written to
temporary files beside the real ones and renamed into place, then the server is asked to reload
(POST /v1/admin/reload). If a rename fails or the server refuses, the files written so far are
put back as they were, so the files and the server never disagree. One change at a time: a lock
file beside the rollout file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from cli.atomic import exclusive_lock
from serving.rollout import Rollout, RolloutError

STABLE, CANARY, SHADOW = "stable", "canary", "shadow"  # the labels a rollout here uses
RELOAD_TIMEOUT_S = 300  # a reload loads and warms up a new version before it answers


class ServingChangeError(ValueError):
    """A change that cannot be made: one line; nothing changed."""


@dataclass
class ServingState:
    config_path: Path
    rollout_path: Path
    config: model_server_config_pb2.ModelServerConfig
    rollout: Rollout | None  # None: no rollout file yet
    model: str

    def entry(self, config=None):
        """This model's ModelConfig in a config (default: this state's)."""
        config = config or self.config
        return next(m for m in config.model_config_list.config if m.name == self.model)

    @property
    def labels(self) -> dict[str, int]:
        return dict(self.entry().version_labels)

    @property
    def base_path(self) -> Path:
        return self.config_path.parent / self.entry().base_path  # an absolute one stays

    @property
    def candidate(self) -> tuple[str, int] | None:
        """The label and version on trial: the canary, else the shadow."""
        labels = self.labels
        for label in (CANARY, SHADOW):
            if label in labels:
                return label, labels[label]
        return None

    def as_json(self) -> dict:
        return {
            "model": self.model,
            "labels": self.labels,
            "versions": sorted(self.entry().model_version_policy.specific.versions),
            "rollout": self.rollout.to_json() if self.rollout else None,
        }


def read_state(config_path: Path, rollout_path: Path, model: str | None = None) -> ServingState:
    try:
        text = config_path.read_text(encoding="utf-8")
        config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except (OSError, UnicodeDecodeError) as error:
        raise ServingChangeError(f"model config {config_path} cannot be read: {error}") from None
    except text_format.ParseError as error:
        first = str(error).strip().splitlines()[0]
        raise ServingChangeError(
            f"model config {config_path}: not a ModelServerConfig in text format: {first}"
        ) from None
    models = [m.name for m in config.model_config_list.config]
    if not models:
        raise ServingChangeError(f"model config {config_path} lists no model")
    rollout = None
    if rollout_path.exists():
        try:
            rollout = Rollout.read(rollout_path)
        except RolloutError as error:
            raise ServingChangeError(str(error)) from None
    model = model or (rollout.model if rollout else models[0])
    if model not in models:
        raise ServingChangeError(
            f"model config {config_path} has no model {model!r} (it has {', '.join(models)})"
        )
    return ServingState(config_path, rollout_path, config, rollout, model)


def changed(
    state: ServingState, labels: dict[str, int], rollout: Rollout
) -> model_server_config_pb2.ModelServerConfig:
    """A copy of the config where this model serves exactly the labelled versions, so a new
    push is loaded only when a rollout names it; RolloutError if the rollout does not fit."""
    if problems := rollout.problems({state.model: labels}):
        raise ServingChangeError(problems[0])
    config = model_server_config_pb2.ModelServerConfig()
    config.CopyFrom(state.config)
    entry = state.entry(config)
    entry.version_labels.clear()
    entry.version_labels.update(labels)
    entry.model_version_policy.Clear()
    entry.model_version_policy.specific.versions.extend(sorted(set(labels.values())))
    return config


def _temporary(path: Path, text: str) -> str:
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(partial, 0o644)
    return partial


def write_pair(state: ServingState, config, rollout: Rollout) -> dict[Path, str | None]:
    """Both files replaced (temporary files, then renames); what they held before, to undo."""
    before: dict[Path, str | None] = {
        path: path.read_text(encoding="utf-8") if path.exists() else None
        for path in (state.config_path, state.rollout_path)
    }
    texts = {
        state.config_path: text_format.MessageToString(config),
        state.rollout_path: json.dumps(rollout.to_json(), indent=2) + "\n",
    }
    partials: dict[Path, str] = {}
    try:
        for path, text in texts.items():
            partials[path] = _temporary(path, text)
        done = []
        for path, partial in partials.items():
            os.replace(partial, path)
            done.append(path)
    except OSError as error:
        for path in partials:
            with contextlib.suppress(OSError):
                os.unlink(partials[path])
        restore(before)
        raise ServingChangeError(f"cannot write {error.filename or ''}: {error}") from None
    return before


def restore(before: dict[Path, str | None]) -> None:
    """Put both files back as they were (a file that did not exist is removed)."""
    for path, text in before.items():
        if text is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        os.replace(_temporary(path, text), path)


def reload(url: str, token_file: Path | None) -> str | None:
    """Ask the server to re-read both files. None when it applied them; why not, else (one
    line); ConnectionError when no server answers at url."""
    headers = {}
    if token_file is not None:
        try:
            headers["Authorization"] = "Bearer " + token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            return f"cannot read --token-file {token_file}: {error.strerror}"
    try:
        response = requests.post(
            f"{url.rstrip('/')}/v1/admin/reload", headers=headers, timeout=RELOAD_TIMEOUT_S
        )
    except requests.ConnectionError:
        raise ConnectionError(f"no server answers at {url}") from None
    except requests.RequestException as error:
        return f"the reload at {url} failed: {error}"
    if response.status_code == 200:
        return None
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    return f"the server at {url} refused the reload (HTTP {response.status_code}): {message}"


def locked(rollout_path: Path) -> contextlib.AbstractContextManager[None]:
    """One rollout change at a time (two would each undo the other's files)."""
    lock = rollout_path.parent / f".{rollout_path.name}.lock"
    return exclusive_lock(
        lock, f"another rollout change holds {lock}; wait for it", ServingChangeError
    )


def apply(
    state: ServingState, labels: dict[str, int], rollout: Rollout, url: str | None,
    token_file: Path | None,
) -> str:  # fmt: skip
    """Write both files and reload: a line saying how it was applied; ServingChangeError (files
    put back) when the server refused."""
    config = changed(state, labels, rollout)
    before = write_pair(state, config, rollout)
    if not url:
        return "written; the server applies them on its next reload"
    try:
        problem = reload(url, token_file)
    except ConnectionError as error:  # no server running: it reads these files when it starts
        return f"written; {error}, so it reads them when it starts"
    if problem is not None:
        restore(before)
        raise ServingChangeError(f"{problem}; both files put back as they were")
    return f"applied: the server at {url} reloaded"


def list_versions(base_path: Path) -> list[int]:
    """Integer-named folders under base_path, as the server finds versions (serving.versions,
    which imports TensorFlow: this command does not need it)."""
    try:
        names = os.listdir(base_path)
    except FileNotFoundError:
        return []
    return sorted(
        int(name)
        for name in names
        if name.isascii() and name.isdigit() and (Path(base_path) / name).is_dir()
    )


def split_rollout(model: str, canary_percent: float, shadow_fraction: float | None) -> Rollout:
    """The rollout of a trial: the canary takes canary_percent of traffic; with a shadow
    fraction, the candidate also scores copies of that share of the stable's requests."""
    split = {STABLE: 100.0 - canary_percent}
    if canary_percent:
        split[CANARY] = float(canary_percent)
    shadow = None
    if shadow_fraction:  # a shadow label of its own: a split label may not also shadow
        shadow = {"label": SHADOW if canary_percent else CANARY, "fraction": shadow_fraction}
    data = {"model": model, "split": split, **({"shadow": shadow} if shadow else {})}
    return Rollout.from_json(data)

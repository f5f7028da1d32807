"""What a rollout decision does: the labels and rollout it leads to (enter, promote, roll back),
then one locked step that records it in MLMD, writes both files and reloads the server.

- enter: a pushed version becomes the canary (a share of the traffic), the shadow (scores a
  copy of it), or both; stable keeps serving the rest. A model config without a stable label
  takes the version as stable: the first version has nothing to be judged against.
- promote: the candidate's version becomes stable and takes all traffic; the trial ends.
- roll back: the candidate's labels go; stable takes all traffic again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from monitoring.serving_state import (
    CANARY,
    SHADOW,
    STABLE,
    ServingChangeError,
    ServingState,
    apply,
    locked,
    read_state,
    split_rollout,
)
from pipeline.metadata import decisions
from pipeline.metadata.decisions import ENTER, PROMOTE, ROLL_BACK
from serving.rollout import Rollout


class AlreadyInForceError(ServingChangeError):
    """The change asked for is in force already: nothing to write, reload or record."""


@dataclass
class Change:
    """A decision before it is applied: what it is, why, and the serving state it leads to."""

    decision: str
    reason: str
    trigger: str
    labels: dict[str, int]
    rollout: Rollout
    control: int | None
    candidate: int | None
    evidence: dict | None = None  # request_log, outcomes, outcomes_sha256, metrics


def _stable(state: ServingState) -> int | None:
    return state.labels.get(STABLE)


def entering(
    state: ServingState,
    version: int,
    canary_percent: float,
    shadow_fraction: float | None,
    trigger: str,
) -> Change:
    stable = _stable(state)
    if stable is None:  # nothing to compare with yet: the first version serves everything
        return Change(
            ENTER,
            f"version {version} is the first: it enters as stable",
            trigger,
            {STABLE: version},
            split_rollout(state.model, 0, None),
            None,
            version,
        )
    if version == stable:
        raise ServingChangeError(f"version {version} is stable already; nothing to enter")
    if not canary_percent and not shadow_fraction:
        raise ServingChangeError("enter needs --canary-percent, --shadow-fraction or both")
    replaced = state.candidate
    labels = {STABLE: stable, CANARY: version}
    if canary_percent and shadow_fraction:
        labels[SHADOW] = version
    rollout = split_rollout(state.model, canary_percent, shadow_fraction)
    if labels == state.labels and rollout == state.rollout:  # the DAG's task after the runner
        raise AlreadyInForceError(f"version {version} is in this rollout already; nothing changed")
    how = [f"canary with {canary_percent:g}% of traffic"] if canary_percent else []
    how += [f"shadow of {shadow_fraction:.0%} of requests"] if shadow_fraction else []
    rest = "the rest" if canary_percent else "every request"
    reason = f"version {version} enters as {' and '.join(how)}; stable {stable} serves {rest}"
    if replaced and replaced[1] != version:
        reason += f" (it replaces candidate {replaced[1]}, whose trial ends undecided)"
    return Change(ENTER, reason, trigger, labels, rollout, stable, version)


def promoting(state: ServingState, reason: str, trigger: str) -> Change:
    candidate = state.candidate
    if candidate is None:
        raise ServingChangeError(
            f"nothing to promote: model {state.model} has no canary or shadow label "
            f"(labels: {decisions.label_text(state.labels, sort=False)})"
        )
    version = candidate[1]
    return Change(
        PROMOTE,
        reason or f"candidate {version} promoted to stable",
        trigger,
        {STABLE: version},
        split_rollout(state.model, 0, None),
        _stable(state),
        version,
    )


def rolling_back(state: ServingState, reason: str, trigger: str) -> Change:
    candidate, stable = state.candidate, _stable(state)
    if candidate is None or stable is None:
        raise ServingChangeError(
            f"nothing to roll back: model {state.model} has no candidate next to a stable label "
            f"(labels: {decisions.label_text(state.labels, sort=False)})"
        )
    return Change(
        ROLL_BACK,
        reason or f"candidate {candidate[1]} rolled back",
        trigger,
        {STABLE: stable},
        split_rollout(state.model, 0, None),
        stable,
        candidate[1],
    )


def initial_state(config_path: Path, rollout_path: Path, model: str, base_path: Path):
    """A model config (and rollout) for a model not served by labels yet: its folder, no
    version; `entering` then makes the first version stable."""
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = model, str(base_path), "tensorflow"
    return ServingState(config_path, rollout_path, config, None, model)


@dataclass
class Target:
    """Where the change goes: the two files, the server, and the MLMD store."""

    model_config: Path
    rollout_file: Path
    model: str | None = None
    url: str | None = None  # None: write the files only
    token_file: Path | None = None


def current(target: Target) -> ServingState:
    return read_state(target.model_config, target.rollout_file, target.model)


def current_or_new(target: Target, base_path: Path, model: str):
    """The state, or a new one for a model config that does not exist yet."""
    if target.model_config.exists():
        return current(target)
    return initial_state(target.model_config, target.rollout_file, model, base_path)


def execute(target: Target, store, decide, read=current) -> tuple[Change, str, int]:
    """Under the lock: read(target) the state, decide(state) -> Change, record it (RUNNING),
    apply it, finish the record. Returns (change, how it was applied, execution id)."""
    target.rollout_file.parent.mkdir(parents=True, exist_ok=True)
    with locked(target.rollout_file):
        state = read(target)
        change = decide(state)
        pushed = decisions.pushed_models(
            store, str(state.base_path), {"control": change.control, "candidate": change.candidate}
        )
        evidence = change.evidence or {}
        record = {
            "decision": change.decision,
            "reason": change.reason,
            "trigger": change.trigger,
            "model_name": state.model,
            "control_version": change.control,
            "candidate_version": change.candidate,
            "labels_before": state.labels,
            "labels_after": change.labels,
            "rollout_before": state.rollout.to_json() if state.rollout else None,
            "rollout_after": change.rollout.to_json(),
            "request_log": evidence.get("request_log", []),
            "outcomes": evidence.get("outcomes"),
            "outcomes_sha256": evidence.get("outcomes_sha256"),
            "metrics": evidence.get("metrics", {}),
        }
        execution_id = decisions.record(store, record, pushed)
        try:
            applied = apply(state, change.labels, change.rollout, target.url, target.token_file)
        except ServingChangeError as error:
            decisions.finish(store, execution_id, None, str(error))
            raise
        decisions.finish(store, execution_id, applied)
    return change, applied, execution_id


def summary(change: Change, applied: str, execution_id: int, target: Target) -> str:
    labels = decisions.label_text(change.labels, sort=False)  # never "none": stable is set
    return (
        f"{change.decision}: {change.reason}. Labels now {labels}; {target.model_config.name} "
        f"and {target.rollout_file.name} {applied}; recorded as RolloutDecision {execution_id}"
    )


def pushed_version(store, run_id: str) -> tuple[int, str] | None:
    """The version a run's Pusher pushed (not reused from cache), and its folder's parent."""
    from pipeline.metadata.store import pushes, run_executions
    from pipeline.names import PUSHER

    pushers = [
        r.execution.id
        for r in run_executions(store, run_id)
        if r.node_id == PUSHER and r.state == "COMPLETE"
    ]
    found = pushes(store, pushers)
    if not found:
        return None
    destination = decisions.pushed_destination(found[-1]).rstrip("/")
    return int(os.path.basename(destination)), os.path.dirname(destination)

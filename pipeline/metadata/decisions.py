"""Rollout decisions in MLMD, written by monitoring/rollout_actions.py: each enter, promote and
roll back is an execution of type RolloutDecision whose input events link the PushedModels
involved (event key: their role, control or candidate), with the evidence as properties: the
request log's files and row range, the outcomes file and its SHA-256, the metrics, the labels
and rollout before and after.

`python -m lineage trace` of a pushed model lists them (rollout_decisions, decision_lines).
"""

from __future__ import annotations

import datetime
import json
import os

from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline.metadata.store import INPUT_EVENTS, pushed_destination

EXECUTION_TYPE = "RolloutDecision"
ENTER, PROMOTE, ROLL_BACK = "enter", "promote", "roll back"
INT_PROPERTIES = ("control_version", "candidate_version")
TEXT_PROPERTIES = ("decision", "reason", "trigger", "model_name", "decided_at", "applied",
                   "outcomes", "outcomes_sha256", "error")  # fmt: skip
JSON_PROPERTIES = ("request_log", "metrics", "labels_before", "labels_after", "rollout_before",
                   "rollout_after")  # fmt: skip


def _type_id(store) -> int:
    properties = {name: pb.INT for name in INT_PROPERTIES}
    properties.update({name: pb.STRING for name in TEXT_PROPERTIES + JSON_PROPERTIES})
    return store.put_execution_type(
        pb.ExecutionType(name=EXECUTION_TYPE, properties=properties), can_add_fields=True
    )


def pushed_models(store, base_path: str, versions: dict[str, int | None]) -> dict[str, pb.Artifact]:
    """{role: the newest PushedModel whose destination is that version's folder}; a version
    copied in by hand has none and is named by its number alone."""
    found = {}
    pushed = store.get_artifacts_by_type("PushedModel")
    base = os.path.realpath(base_path)
    for role, version in versions.items():
        if version is None:
            continue
        matches = [
            item
            for item in pushed
            if (where := pushed_destination(item))
            and os.path.basename(where.rstrip("/")) == str(version)
        ]
        # The same number pushed to another folder (another pipeline) only when none is here.
        here = [
            m for m in matches if os.path.realpath(os.path.dirname(pushed_destination(m))) == base
        ]
        chosen = here or matches
        if chosen:
            found[role] = max(chosen, key=lambda a: a.create_time_since_epoch)
    return found


def record(store, decision: dict, pushed: dict[str, pb.Artifact]) -> int:
    """The decision as a RUNNING execution linked to its PushedModels; finish() ends it."""
    execution = pb.Execution(type_id=_type_id(store), last_known_state=pb.Execution.RUNNING)
    decision = {**decision, "decided_at": _now()}
    for name in INT_PROPERTIES:
        if decision.get(name) is not None:
            execution.properties[name].int_value = int(decision[name])
    for name in TEXT_PROPERTIES:
        if decision.get(name) is not None:
            execution.properties[name].string_value = str(decision[name])
    for name in JSON_PROPERTIES:
        if name in decision:
            execution.properties[name].string_value = json.dumps(decision[name], sort_keys=True)
    events = []
    for role, artifact in sorted(pushed.items()):
        event = pb.Event(type=pb.Event.INPUT)
        event.path.steps.add().key = role
        events.append((artifact, event))
    execution_id, _, _ = store.put_execution(execution, events, [])
    return execution_id


def finish(store, execution_id: int, applied: str | None, error: str | None = None) -> None:
    """COMPLETE with how it was applied, or FAILED with why (nothing changed)."""
    [execution] = store.get_executions_by_id([execution_id])
    execution.last_known_state = pb.Execution.FAILED if error else pb.Execution.COMPLETE
    if applied:
        execution.properties["applied"].string_value = applied
    if error:
        execution.properties["error"].string_value = error
    store.put_execution(execution, [], [])


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _value(execution, name: str):
    if name not in execution.properties:
        return None
    value = execution.properties[name]
    if name in INT_PROPERTIES:
        return value.int_value
    return json.loads(value.string_value) if name in JSON_PROPERTIES else value.string_value


def rollout_decisions(store, pushed_model_id: int) -> list[dict]:
    """Every RolloutDecision that names this PushedModel, oldest first, with its role in it."""
    try:
        type_id = store.get_execution_type(EXECUTION_TYPE).id
    except Exception:  # noqa: BLE001 (MLMD's NotFoundError: no decision recorded yet)
        return []
    events = [
        e for e in store.get_events_by_artifact_ids([pushed_model_id]) if e.type in INPUT_EVENTS
    ]
    roles = {e.execution_id: e.path.steps[0].key if e.path.steps else "" for e in events}
    executions = [e for e in store.get_executions_by_id(sorted(roles)) if e.type_id == type_id]
    found = []
    for execution in sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id)):
        names = INT_PROPERTIES + TEXT_PROPERTIES + JSON_PROPERTIES
        found.append(
            {
                "id": execution.id,
                "state": pb.Execution.State.Name(execution.last_known_state),
                "role": roles[execution.id],
                **{name: _value(execution, name) for name in names},
            }
        )
    return found


def label_text(labels: dict | None, sort: bool = True) -> str:
    """Labels as "canary 2, stable 1", or "none"; sort=False keeps the dict's order (the
    rollout's messages list stable first, as the decision built them)."""
    items = list((labels or {}).items())
    return ", ".join(f"{k} {v}" for k, v in (sorted(items) if sort else items)) or "none"


def decision_lines(decisions: list[dict]) -> list[str]:
    """The decisions as lines for the lineage trace (indented under their pushed model)."""
    lines = []
    for d in decisions:
        state = "" if d["state"] == "COMPLETE" else f" [{d['state']}: {d.get('error') or ''}]"
        lines.append(
            f"  Rollout decision {d['id']} at {d['decided_at']}: {d['decision']} (this model as "
            f"{d['role']}, by {d['trigger']}){state}"
        )
        lines.append(f"    reason: {d['reason']}")
        before, after = label_text(d.get("labels_before")), label_text(d.get("labels_after"))
        lines.append(f"    labels {before} -> {after}")
        for extent in d.get("request_log") or []:
            lines.append(
                f"    request log {extent['path']} rows {extent['first_row']}-{extent['last_row']}"
            )
        if d.get("outcomes"):
            lines.append(f"    outcomes {d['outcomes']}  sha256 {d['outcomes_sha256']}")
    return lines

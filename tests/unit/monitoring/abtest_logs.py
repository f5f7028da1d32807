"""Request logs of format cfpb-request-log/2 for the A/B tests, written by the server's own
RequestLog: real rows of the bundled sample, each served by an arm, some shadowed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import features
from serving.request_log import Entry, RequestLog


@dataclass
class Served:
    """One example as the server answered it: by which version and arm, with what score."""

    row: dict  # the prepared CSV's columns, as the client sent them
    version: int
    arm: str | None
    probability: float
    threshold: float = 0.5
    assignment: str = "split"
    shadow: bool = False
    request_id: str = ""
    latency_ms: float = 5.0


def write_log(directory: Path, served: list[Served], start: float | None = None) -> Path:
    """Each Served as its own logged row (shadow copies share their primary's request id)."""
    log = RequestLog(str(directory), synchronous="OFF")
    # One millisecond apart, the newest now: a report's window ends now.
    start = time.time() - len(served) / 1000 - 1 if start is None else start
    for number, item in enumerate(served):
        example = {
            k: ("bytes", [v.encode()])
            for k, v in item.row.items()
            if k in features.RAW_FEATURE_KEYS
        }
        outputs = {
            features.PREDICTION_KEY: np.array([item.probability], np.float32),
            features.DECISION_KEY: np.array([int(item.probability > item.threshold)], np.int64),
        }
        entry = Entry(
            request_id=item.request_id or f"r{number}",
            received=start + number * 0.001,
            model_name="cfpb",
            version=item.version,
            label=item.arm if item.assignment == "explicit" else None,
            protocol="rest",
            signature="serving_default",
            examples=[example],
            known=None,
            unknown=[],
            outputs=outputs,
            latency_ms=item.latency_ms,
            arm=item.arm,
            assignment=item.assignment,
            shadow=item.shadow,
        )
        log.append(entry).result()
    log.close()
    return directory


def scores(labels: np.ndarray, skill: float, seed: int) -> np.ndarray:
    """Probabilities whose AUC grows with skill (0: coin flips), around a 20% dispute rate."""
    rng = np.random.default_rng(seed)
    logits = -1.4 + skill * (labels - 0.2) * 2.5 + rng.normal(0, 1, len(labels))
    return 1 / (1 + np.exp(-logits))


def ab_traffic(
    rows: list[dict],
    control_skill: float = 1.0,
    candidate_skill: float = 1.0,
    shadow: bool = True,
    canary_every: int = 0,
) -> list[Served]:
    """Control (stable, version 1) answers every row; the candidate (canary, version 2) scores
    a shadow copy of each (shadow=True), and/or answers every canary_every-th row itself."""
    labels = np.array([int(r[features.LABEL_KEY]) for r in rows])
    control = scores(labels, control_skill, 1)
    candidate = scores(labels, candidate_skill, 2)
    served = []
    for index, row in enumerate(rows):
        request = f"q{index}"
        if canary_every and index % canary_every == 0:
            served.append(Served(row, 2, "canary", float(candidate[index]), request_id=request))
            continue
        served.append(Served(row, 1, "stable", float(control[index]), request_id=request))
        if shadow:
            served.append(
                Served(row, 2, "canary", float(candidate[index]), assignment="shadow",
                       shadow=True, request_id=request, latency_ms=7.0)
            )  # fmt: skip
    return served


def outcomes_file(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{features.ID_KEY},{features.LABEL_KEY}"]
    lines += [f"{r[features.ID_KEY]},{r[features.LABEL_KEY]}" for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path

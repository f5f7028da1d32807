"""A rollout of one model's versions: traffic split by weight between labelled versions, and an
optional shadow that scores a copy of the traffic without ever answering.

TF Serving's model config stays the one source of truth for versions and labels (stable,
canary); the rollout names labels only. It lives in its own file beside the model config
(--rollout_file, JSON), which the real TF Serving never reads, and is read at start and on
every reload: a bad file changes nothing. Assignment is sticky: a complaint id (else the request
id) is hashed, so the same complaint gets the same label while the split is unchanged.

    {"format": "cfpb-rollout/1", "model": "cfpb",
     "split": {"stable": 90, "canary": 10},
     "shadow": {"label": "candidate", "fraction": 1.0}}
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

FORMAT = "cfpb-rollout/1"
KEYS = {"format", "model", "split", "shadow"}
# Why a request went where it did, as the request log records it.
SPLIT, EXPLICIT, DEFAULT, SHADOW = "split", "explicit", "default", "shadow"


class RolloutError(ValueError):
    """A rollout that cannot be applied: one line saying what and where; nothing changes."""


def _unit(*parts: str) -> float:
    """A number in [0, 1) from a hash of the parts: the same parts, the same number."""
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Rollout:
    model: str
    split: tuple[tuple[str, float], ...]  # (label, weight in percent), by label
    shadow: str | None = None
    shadow_fraction: float = 1.0

    @classmethod
    def from_json(cls, data: object, where: str = "rollout") -> Rollout:
        if not isinstance(data, dict):
            raise RolloutError(f"{where}: expected a JSON object with model, split, shadow")
        if unknown := sorted(set(data) - KEYS):
            raise RolloutError(f"{where}: unknown key(s) {', '.join(unknown)}; known: model, "
                               "split, shadow")  # fmt: skip
        if data.get("format", FORMAT) != FORMAT:
            raise RolloutError(f"{where}: format {data['format']!r}, expected {FORMAT!r}")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise RolloutError(f"{where}: 'model' must name the served model")
        split = data.get("split")
        if not isinstance(split, dict) or not split:
            raise RolloutError(f"{where}: 'split' must map labels to weights, e.g. "
                               '{"stable": 90, "canary": 10}')  # fmt: skip
        weights = []
        for label, weight in sorted(split.items()):
            number = (
                weight if isinstance(weight, int | float) and not isinstance(weight, bool) else -1
            )
            if not (0 <= number <= 100) or math.isnan(number):
                raise RolloutError(f"{where}: the weight of {label!r} must be a number from 0 to "
                                   f"100, not {weight!r}")  # fmt: skip
            weights.append((label, float(number)))
        total = sum(w for _, w in weights)
        if abs(total - 100) > 1e-9:
            raise RolloutError(f"{where}: the split's weights add up to {total:g}, not 100")
        shadow, fraction = data.get("shadow"), 1.0
        if shadow is not None:
            if not isinstance(shadow, dict) or not isinstance(shadow.get("label"), str):
                raise RolloutError(f'{where}: \'shadow\' must be {{"label": ..., "fraction": ...}}')
            if unknown := sorted(set(shadow) - {"label", "fraction"}):
                raise RolloutError(f"{where}: unknown key(s) {', '.join(unknown)} in 'shadow'; "
                                   "known: label, fraction")  # fmt: skip
            fraction = shadow.get("fraction", 1.0)
            if (
                isinstance(fraction, bool)
                or not isinstance(fraction, int | float)
                or not (0 < fraction <= 1)
            ):
                raise RolloutError(f"{where}: the shadow's fraction must be above 0 and at most "
                                   f"1, not {fraction!r}")  # fmt: skip
            shadow = shadow["label"]
            if dict(weights).get(shadow, 0) > 0:
                raise RolloutError(f"{where}: the shadow {shadow!r} also takes traffic in the "
                                   "split; a shadow only scores copies of it")  # fmt: skip
        return cls(model, tuple(weights), shadow, float(fraction))

    @classmethod
    def read(cls, path: str | Path) -> Rollout:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RolloutError(f"--rollout_file {path}: cannot be read: {error}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RolloutError(f"--rollout_file {path}: not JSON: {error}") from None
        return cls.from_json(data, f"--rollout_file {path}")

    def to_json(self) -> dict:
        found: dict = {"format": FORMAT, "model": self.model, "split": dict(self.split)}
        if self.shadow is not None:
            found["shadow"] = {"label": self.shadow, "fraction": self.shadow_fraction}
        return found

    def write(self, path: str | Path) -> None:
        """Replace the file whole (a reload never reads half of it)."""
        path = Path(path)
        handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(self.to_json(), out, indent=2)
            out.write("\n")
        os.replace(partial, path)

    def labels(self) -> set[str]:
        return {label for label, _ in self.split} | ({self.shadow} if self.shadow else set())

    def problems(self, served: dict[str, dict[str, int]], where: str = "rollout") -> list[str]:
        """What the served models' config ({model: {label: version}}) lacks for this rollout."""
        if self.model not in served:
            return [f"{where}: model {self.model!r} is not served here (models: "
                    f"{', '.join(sorted(served))})"]  # fmt: skip
        labels = served[self.model]
        missing = sorted(self.labels() - set(labels))
        if missing:
            return [f"{where}: label(s) {', '.join(map(repr, missing))} of the rollout are not "
                    f"labels of model {self.model} in its model config (its labels: "
                    f"{', '.join(sorted(labels)) or 'none'})"]  # fmt: skip
        return []

    def arm(self, key: str) -> str:
        """The label a complaint (or request) id is assigned to: sticky, by hash."""
        point, edge = 100 * _unit(self.model, "split", key), 0.0
        for label, weight in self.split:
            edge += weight
            if point < edge:
                return label
        return [label for label, weight in self.split if weight > 0][-1]

    def shadows(self, key: str) -> bool:
        """Whether the shadow scores a copy of this complaint's request."""
        return self.shadow is not None and _unit(self.model, "shadow", key) < self.shadow_fraction

"""The rollout file: parsed or refused in one line, sticky and proportional assignment."""

from __future__ import annotations

import json
import math

import pytest
from conftest import bundled_rows

from serving import rollout
from serving.rollout import Rollout, RolloutError

SERVED = {"cfpb": {"stable": 1, "canary": 2, "candidate": 3}}


def parsed(data: dict) -> Rollout:
    return Rollout.from_json(data, "--rollout_file r.json")


def refusal(data) -> str:
    with pytest.raises(RolloutError) as raised:
        parsed(data)
    return str(raised.value)


def test_a_rollout_round_trips_through_its_file(tmp_path):
    data = {
        "model": "cfpb",
        "split": {"stable": 90, "canary": 10},
        "shadow": {"label": "candidate", "fraction": 0.5},
    }
    found = parsed(data)
    assert found.split == (("canary", 10.0), ("stable", 90.0))
    assert (found.shadow, found.shadow_fraction) == ("candidate", 0.5)
    assert found.problems(SERVED) == []
    found.write(tmp_path / "rollout.json")
    assert Rollout.read(tmp_path / "rollout.json") == found
    assert json.loads((tmp_path / "rollout.json").read_text())["format"] == rollout.FORMAT


def test_every_bad_rollout_is_one_exact_line(tmp_path):
    split = {"stable": 90, "canary": 10}
    where = "--rollout_file r.json"
    expected = {
        "weights": (
            {"model": "cfpb", "split": {"stable": 90, "canary": 20}},
            f"{where}: the split's weights add up to 110, not 100",
        ),
        "nan": (
            {"model": "cfpb", "split": {"stable": math.nan, "canary": 100}},
            f"{where}: the weight of 'stable' must be a number from 0 to 100, not nan",
        ),
        "negative": (
            {"model": "cfpb", "split": {"stable": 110, "canary": -10}},
            f"{where}: the weight of 'canary' must be a number from 0 to 100, not -10",
        ),
        "text weight": (
            {"model": "cfpb", "split": {"stable": "90", "canary": 10}},
            f"{where}: the weight of 'stable' must be a number from 0 to 100, not '90'",
        ),
        "shadow in split": (
            {"model": "cfpb", "split": split, "shadow": {"label": "canary"}},
            f"{where}: the shadow 'canary' also takes traffic in the split; a shadow only "
            "scores copies of it",
        ),
        "unknown key": (
            {"model": "cfpb", "split": split, "weights": {}},
            f"{where}: unknown key(s) weights; known: model, split, shadow",
        ),
        "unknown shadow key": (
            {"model": "cfpb", "split": split, "shadow": {"label": "candidate", "share": 0.5}},
            f"{where}: unknown key(s) share in 'shadow'; known: label, fraction",
        ),
        "no model": ({"split": split}, f"{where}: 'model' must name the served model"),
        "fraction": (
            {"model": "cfpb", "split": split, "shadow": {"label": "candidate", "fraction": 0}},
            f"{where}: the shadow's fraction must be above 0 and at most 1, not 0",
        ),
        "bool fraction": (
            {"model": "cfpb", "split": split, "shadow": {"label": "candidate", "fraction": True}},
            f"{where}: the shadow's fraction must be above 0 and at most 1, not True",
        ),
        "not an object": ([1, 2], f"{where}: expected a JSON object with model, split, shadow"),
    }
    for name, (data, message) in expected.items():
        assert refusal(data) == message, name
        assert "\n" not in message

    (tmp_path / "bad.json").write_text('{"model": "cfpb", "split": ')
    with pytest.raises(RolloutError) as raised:
        Rollout.read(tmp_path / "bad.json")
    assert str(raised.value).startswith(f"--rollout_file {tmp_path / 'bad.json'}: not JSON: ")


def test_labels_and_models_the_model_config_does_not_have_are_refused():
    unknown = parsed({"model": "cfpb", "split": {"stable": 50, "blue": 50}})
    assert unknown.problems(SERVED) == [
        "rollout: label(s) 'blue' of the rollout are not labels of model cfpb in its model "
        "config (its labels: canary, candidate, stable)"
    ]
    shadow = parsed({"model": "cfpb", "split": {"stable": 100}, "shadow": {"label": "green"}})
    assert shadow.problems(SERVED) == [
        "rollout: label(s) 'green' of the rollout are not labels of model cfpb in its model "
        "config (its labels: canary, candidate, stable)"
    ]
    other = parsed({"model": "loans", "split": {"stable": 100}})
    assert other.problems(SERVED) == ["rollout: model 'loans' is not served here (models: cfpb)"]
    where = parsed({"model": "cfpb", "split": {"stable": 50, "blue": 50}})
    assert where.problems(SERVED, "--rollout_file r.json")[0].startswith(
        "--rollout_file r.json: label(s) 'blue'"
    )


def test_assignment_is_sticky_and_follows_the_weights():
    split = parsed(
        {
            "model": "cfpb",
            "split": {"stable": 90, "canary": 10},
            "shadow": {"label": "candidate", "fraction": 0.25},
        }
    )
    ids = [f"{3_000_000 + i}" for i in range(10_000)]
    arms = [split.arm(key) for key in ids]
    assert arms == [split.arm(key) for key in ids]  # sticky: the same id, the same arm
    # Binomial: n = 10,000, p = 0.1: sd = 30; 4 sd either side fails once in 15,000 runs
    # (and the hash is fixed, so this is deterministic anyway).
    canary = arms.count("canary")
    assert abs(canary - 1000) <= 4 * math.sqrt(10_000 * 0.1 * 0.9), canary
    shadowed = sum(split.shadows(key) for key in ids)
    assert abs(shadowed - 2500) <= 4 * math.sqrt(10_000 * 0.25 * 0.75), shadowed
    # The shadow draw does not follow the split draw: both arms get shadowed copies.
    assert {arm for key, arm in zip(ids, arms, strict=True) if split.shadows(key)} == {
        "stable",
        "canary",
    }
    # The distinct real complaint ids of the bundled sample (3,468; rows repeat ids).
    real = sorted({row["complaint_id"] for row in bundled_rows()})
    canary = [split.arm(key) for key in real].count("canary")
    assert abs(canary - 0.1 * len(real)) <= 4 * math.sqrt(len(real) * 0.1 * 0.9), canary
    # A weight of 0 takes no traffic; 100 takes all of it.
    whole = parsed({"model": "cfpb", "split": {"stable": 100, "canary": 0}})
    assert {whole.arm(key) for key in ids} == {"stable"}
    assert not whole.shadows("1")

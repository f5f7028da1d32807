"""python -m monitoring.rollout: enter, promote and roll back rewrite the model config and the
rollout file together or not at all, reload the server, and record each decision in MLMD linked
to the pushed models; auto decides by the error rate, the skew alert and the A/B verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from abtest_logs import ab_traffic, outcomes_file, write_log
from conftest import bundled_rows
from google.protobuf import text_format
from rollout_fixtures import FakeServer, push, store_at
from tensorflow_serving.config import model_server_config_pb2

from models import features
from monitoring import continuous, rollout, rollout_checks, serving_state
from pipeline.config import PipelineConfig
from pipeline.metadata import decisions
from serving.rollout import Rollout


@pytest.fixture
def site(tmp_path) -> dict:
    """Versions 1 and 2 pushed by two runs; no model config yet."""
    store = store_at(tmp_path / "out")
    base = tmp_path / "out" / "serving_model"
    pushed = {1: push(store, base, 1, "run-1"), 2: push(store, base, 2, "run-2")}
    return {"store": store, "base": base, "pushed": pushed, "dir": tmp_path / "out"}


def cli(site, *args: str, url: str | None = None) -> int:
    where = ["--model-config", str(site["dir"] / "models.config"), "--output-dir", str(site["dir"])]
    where += ["--url", url] if url else ["--no-reload"]
    return rollout.main([args[0], *where, *args[1:]])


def config_of(site) -> dict:
    config = text_format.Parse(
        (site["dir"] / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    entry = config.model_config_list.config[0]
    return {
        "labels": dict(entry.version_labels),
        "versions": list(entry.model_version_policy.specific.versions),
        "base_path": entry.base_path,
    }


def rollout_of(site) -> dict:
    return json.loads((site["dir"] / "rollout.json").read_text())


def files(site) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes() for p in site["dir"].glob("*") if p.suffix in (".config", ".json")
    }


def test_enter_promote_and_their_records(site, capsys):
    assert cli(site, "enter", "--version", "1", "--base-path", str(site["base"])) == 0
    assert config_of(site) == {"labels": {"stable": 1}, "versions": [1],
                               "base_path": str(site["base"])}  # fmt: skip
    assert rollout_of(site)["split"] == {"stable": 100.0} and "shadow" not in rollout_of(site)
    assert cli(site, "enter", "--version", "latest", "--canary-percent", "50",
               "--shadow-fraction", "1") == 0  # fmt: skip
    assert config_of(site)["labels"] == {"stable": 1, "canary": 2, "shadow": 2}
    assert config_of(site)["versions"] == [1, 2]
    assert rollout_of(site)["split"] == {"stable": 50.0, "canary": 50.0}
    assert rollout_of(site)["shadow"] == {"label": "shadow", "fraction": 1.0}
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("enter: version 2 enters as canary with 50% of traffic and shadow "
                              "of 100% of requests; stable 1 serves the rest.")  # fmt: skip
    assert cli(site, "promote", "--reason", "the report said so") == 0
    assert config_of(site)["labels"] == {"stable": 2} and config_of(site)["versions"] == [2]
    assert rollout_of(site) == {"format": "cfpb-rollout/1", "model": "cfpb",
                                "split": {"stable": 100.0}}  # fmt: skip
    found = decisions.rollout_decisions(site["store"], site["pushed"][2])
    assert [(d["decision"], d["role"], d["state"]) for d in found] == [
        ("enter", "candidate", "COMPLETE"),
        ("promote", "candidate", "COMPLETE"),
    ]
    promoted = found[1]
    assert promoted["reason"] == "the report said so" and promoted["trigger"] == "manual"
    assert promoted["labels_before"] == {"stable": 1, "canary": 2, "shadow": 2}
    assert promoted["labels_after"] == {"stable": 2}
    assert (promoted["control_version"], promoted["candidate_version"]) == (1, 2)
    first = decisions.rollout_decisions(site["store"], site["pushed"][1])
    assert [(d["decision"], d["role"]) for d in first] == [
        ("enter", "candidate"), ("enter", "control"), ("promote", "control"),
    ]  # fmt: skip
    lines = decisions.decision_lines(found)
    assert lines[3].startswith(f"  Rollout decision {promoted['id']} at ")
    assert lines[3].endswith(": promote (this model as candidate, by manual)")
    assert "    labels canary 2, shadow 2, stable 1 -> stable 2" in lines


def test_a_rollback_gives_stable_all_traffic(site):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    cli(site, "enter", "--version", "2", "--shadow-fraction", "0.5")
    assert rollout_of(site)["shadow"] == {"label": "canary", "fraction": 0.5}
    assert cli(site, "rollback") == 0
    assert config_of(site)["labels"] == {"stable": 1} and rollout_of(site)["split"] == {
        "stable": 100.0
    }
    [*_, last] = decisions.rollout_decisions(site["store"], site["pushed"][2])
    assert (last["decision"], last["reason"]) == ("roll back", "candidate 2 rolled back")


def test_a_refused_reload_puts_both_files_back_and_records_the_failure(site, capsys):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    before = files(site)
    with FakeServer(reload_code=400) as server:
        code = cli(site, "enter", "--version", "2", "--canary-percent", "10", url=server.url)
    assert code == 2 and files(site) == before  # byte for byte
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"rollout: the server at {server.url} refused the reload (HTTP 400)")
    assert error.endswith("both files put back as they were") and "\n" not in error
    [*_, failed] = decisions.rollout_decisions(site["store"], site["pushed"][2])
    assert failed["state"] == "FAILED" and "refused the reload" in failed["error"]


def test_a_reload_sends_the_token_and_is_recorded(site, tmp_path):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    (tmp_path / "token.txt").write_text("s3cret\n")
    with FakeServer() as server:
        code = cli(site, "enter", "--version", "2", "--canary-percent", "10", "--token-file",
                   str(tmp_path / "token.txt"), url=server.url)  # fmt: skip
    assert code == 0 and server.requests == [("POST", "/v1/admin/reload", "Bearer s3cret")]
    [*_, done] = decisions.rollout_decisions(site["store"], site["pushed"][2])
    assert done["applied"] == f"applied: the server at {server.url} reloaded"


def test_a_failed_rename_leaves_neither_file_changed(site, monkeypatch):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    before = files(site)
    real, calls = os.replace, []

    def second_fails(source, destination):
        calls.append(destination)
        if len(calls) == 2:  # the model config is in place; the rollout file fails
            raise OSError(28, "No space left on device", str(destination))
        return real(source, destination)

    monkeypatch.setattr(serving_state.os, "replace", second_fails)
    state = serving_state.read_state(site["dir"] / "models.config", site["dir"] / "rollout.json")
    rollout_after = serving_state.split_rollout("cfpb", 10, None)
    config = serving_state.changed(state, {"stable": 1, "canary": 2}, rollout_after)
    with pytest.raises(serving_state.ServingChangeError, match="No space left on device"):
        serving_state.write_pair(state, config, rollout_after)
    monkeypatch.setattr(serving_state.os, "replace", real)
    assert files(site) == before
    assert not [p for p in site["dir"].iterdir() if p.name.endswith(".partial")]


BAD = {
    "nothing to promote": (["promote"], "nothing to promote: model cfpb has no canary or shadow"),
    "nothing to roll back": (["rollback"], "nothing to roll back: model cfpb has no candidate"),
    "no such version": (["enter", "--version", "9", "--canary-percent", "5"],
                        "--version 9: no such version folder in "),
    "stable already": (["enter", "--version", "1", "--canary-percent", "5"],
                       "version 1 is stable already; nothing to enter"),
    "neither canary nor shadow": (["enter", "--version", "2"],
                                  "enter needs --canary-percent, --shadow-fraction or both"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_and_changes_nothing(case, site, capsys):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    before, recorded = files(site), len(site["store"].get_executions())
    capsys.readouterr()
    args, words = BAD[case]
    assert cli(site, *args) == 2
    error = capsys.readouterr().err
    assert error.startswith("rollout: ") and words in error and error.count("\n") == 1, error
    assert files(site) == before and len(site["store"].get_executions()) == recorded


def test_a_bad_rollout_file_or_no_store_is_one_line(site, tmp_path, capsys):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    (site["dir"] / "rollout.json").write_text('{"model": "cfpb", "split": {"stable": 60}}')
    assert cli(site, "promote") == 2
    assert "the split's weights add up to 60, not 100" in capsys.readouterr().err
    os.remove(site["dir"] / "metadata.sqlite")
    assert cli(site, "promote") == 2
    assert "no MLMD store at" in capsys.readouterr().err


def test_one_change_at_a_time(site, capsys):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    with serving_state.locked(site["dir"] / "rollout.json"):
        assert cli(site, "enter", "--version", "2", "--canary-percent", "5") == 2
    assert "another rollout change holds" in capsys.readouterr().err
    assert config_of(site)["labels"] == {"stable": 1}


@pytest.fixture
def trial(site, tmp_path):
    """Stable 1 serving, candidate 2 shadowing; the log and outcomes of their traffic."""
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    cli(site, "enter", "--version", "2", "--shadow-fraction", "1")
    rows = [r for r in bundled_rows() if r[features.ID_KEY]][:1200]
    return {**site, "rows": rows, "outcomes": outcomes_file(rows, tmp_path / "outcomes.csv")}


def auto(trial, skill: float, *flags: str, url: str | None = None) -> int:
    log = write_log(trial["dir"] / "log", ab_traffic(trial["rows"], candidate_skill=skill))
    return cli(trial, "auto", "--request-log", str(log), "--outcomes", str(trial["outcomes"]),
               "--resamples", "300", *flags, url=url)  # fmt: skip


def test_auto_rolls_back_a_worse_candidate_and_names_the_evidence(trial, capsys):
    assert auto(trial, 0.0) == 1
    assert config_of(trial)["labels"] == {"stable": 1}
    [*_, last] = decisions.rollout_decisions(trial["store"], trial["pushed"][2])
    assert (last["decision"], last["trigger"], last["state"]) == (
        "roll back",
        "a/b verdict",
        "COMPLETE",
    )
    assert last["reason"].startswith("A/B verdict: AUC candidate - control -")
    assert last["request_log"][0]["first_row"] == 1 and last["request_log"][0]["last_row"] == 2400
    assert last["outcomes"] == str(trial["outcomes"].resolve())
    assert len(last["outcomes_sha256"]) == 64
    assert last["metrics"]["comparisons"]["paired"]["outcomes"] == 1200
    assert "roll back: A/B verdict" in capsys.readouterr().out


def test_auto_promotes_an_equal_candidate(trial):
    assert auto(trial, 1.0, "--max-auc-drop", "0.1") == 0
    assert config_of(trial)["labels"] == {"stable": 2}


def test_auto_keeps_testing_on_too_few_outcomes_and_changes_nothing(trial, capsys):
    trial["outcomes"] = outcomes_file(trial["rows"][:50], trial["dir"] / "few.csv")
    before, recorded = files(trial), len(trial["store"].get_executions())
    assert auto(trial, 0.5) == 3
    out = capsys.readouterr().out.splitlines()
    assert (
        out[0]
        == "error rate not judged: cannot read http://127.0.0.1:8501/metrics (ConnectionError)"
    )
    assert out[1].startswith("keep testing: A/B verdict: too few outcomes to judge (stable v1")
    assert out[1].endswith(" on 50 paired outcomes (about 50 more outcomes)")
    assert files(trial) == before and len(trial["store"].get_executions()) == recorded


def test_auto_rolls_back_on_the_error_rate_first(trial):
    metrics = "\n".join([
        'serving_requests_total{protocol="rest",api="predict",code="200",model="cfpb",'
        'version="1",arm="stable"} 900.0',
        'serving_shadow_predictions_total{model="cfpb",version="2",outcome="ok"} 160.0',
        'serving_shadow_predictions_total{model="cfpb",version="2",outcome="failed"} 40.0',
    ]) + "\n"  # fmt: skip
    with FakeServer(metrics=metrics) as server:
        assert auto(trial, 1.0, url=server.url) == 1  # the A/B verdict would have promoted
    [*_, last] = decisions.rollout_decisions(trial["store"], trial["pushed"][2])
    assert last["trigger"] == "error rate" and last["metrics"]["error_rate"] == {
        "failed": 40, "total": 200,
    }  # fmt: skip
    assert last["reason"] == ("error rate of candidate 2: 40 of 200 requests failed (20.0%), above "
                              "--max-error-rate 0.05")  # fmt: skip


def test_auto_rolls_back_on_a_live_skew_alert(trial, monkeypatch):
    monkeypatch.setattr(
        rollout_checks,
        "skew_alerts",
        lambda args, version: (["skew: state l_infty 0.453 > 0.15"], None),
    )
    assert auto(trial, 1.0, "--check-skew", "--max-auc-drop", "0.1") == 1
    [*_, last] = decisions.rollout_decisions(trial["store"], trial["pushed"][2])
    assert last["trigger"] == "skew alert"
    assert last["reason"] == "live skew alert on candidate 2: skew: state l_infty 0.453 > 0.15"


def test_auto_without_a_candidate_has_nothing_to_judge(site, capsys):
    cli(site, "enter", "--version", "1", "--base-path", str(site["base"]))
    assert cli(site, "auto", "--outcomes", "unused.csv") == 3
    assert "nothing to judge: model cfpb has no canary or shadow label" in capsys.readouterr().out


def config(site, mode: str) -> PipelineConfig:
    return PipelineConfig(output_dir=str(site["dir"]), rollout=mode, rollout_server_url="")


def test_continuous_training_enters_a_new_push_by_the_rollout(site):
    store = site["store"]
    assert continuous.enter_after_push(config(site, "replace"), store, "run-2") is None
    line = continuous.enter_after_push(config(site, "canary"), store, "run-1")
    assert line.startswith("rollout: enter: version 1 is the first: it enters as stable.")
    line = continuous.enter_after_push(config(site, "canary"), store, "run-2")
    assert line.startswith(
        "rollout: enter: version 2 enters as canary with 10% of traffic; stable 1 serves the rest."
    )
    assert config_of(site)["labels"] == {"stable": 1, "canary": 2}
    assert Rollout.read(site["dir"] / "rollout.json").split == (("canary", 10.0), ("stable", 90.0))
    assert continuous.enter_after_push(config(site, "canary"), store, "run-2") == (
        "rollout canary: version 2 is in this rollout already; nothing changed"
    )  # the runner entered it, then the DAG's task asked again: recorded once
    push(store, site["base"], 2, "run-3", cached=True)  # a rerun: Pusher reused the push
    assert continuous.enter_after_push(config(site, "shadow"), store, "run-3") == (
        "rollout shadow: run run-3 pushed no new version; nothing entered"
    )
    [entered] = decisions.rollout_decisions(store, site["pushed"][2])
    assert entered["trigger"] == "continuous training (run run-2)"


def test_continuous_training_refuses_a_config_of_another_folder(site, tmp_path):
    other = tmp_path / "elsewhere" / "models.config"
    other.parent.mkdir()
    other.write_text('model_config_list { config { name: "cfpb" base_path: "/srv/models" '
                     'version_labels { key: "stable" value: 7 } } }')  # fmt: skip
    found = PipelineConfig(output_dir=str(site["dir"]), rollout="canary", rollout_server_url="",
                           rollout_model_config=str(other))  # fmt: skip
    line = continuous.enter_after_push(found, site["store"], "run-2")
    assert line.startswith("error: rollout canary: version 2 did not enter: ")
    assert f"serves /srv/models, but run run-2 pushed to {site['base']}" in line
    assert not (other.parent / "rollout.json").exists()


def test_every_number_has_a_range():
    from cli.bounds import numeric_without_range

    assert numeric_without_range(rollout.make_parser()) == []
    assert Path(rollout.__file__).read_text().count("\n") < 350


def test_the_dags_task_enters_what_the_newest_run_pushed(site, capsys):
    flags = ["--output-dir", str(site["dir"]), "--rollout", "shadow", "--rollout-server-url", ""]
    assert rollout.main(["enter-run", *flags]) == 0  # run-2 pushed version 2: first, so stable
    assert capsys.readouterr().out.startswith("rollout: enter: version 2 is the first: it ")
    assert config_of(site)["labels"] == {"stable": 2}
    assert rollout.main(["enter-run", "--output-dir", str(site["dir"])]) == 0
    assert capsys.readouterr().out == "rollout replace: nothing to enter\n"

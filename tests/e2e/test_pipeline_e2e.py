"""The real pipeline on real Beam and a real MLMD store, on small slices of the bundled data.

New data arrives as spans (data/span-N/complaints.csv); six runs share one output folder:
  1 first     span 1: everything executes; a blessed model is pushed
  2 rerun     nothing changed, --skip-cache-check: TFX finds every component in its cache
    again     nothing changed again: reported from run 2 before TFX starts; no new run
  3 worse     one training step (LocalDagRunner): the model is worse than the blessed one,
              so it is refused and nothing is pushed
  4 killed    span 2 arrives; the run is killed (SIGKILL) while Trainer runs
  5 resumed   the same again: completed components come from the cache, Trainer and what
              follows execute, the baseline is span 1's model, at most one push
  6 drifted   span 3, with products far from span 2's mix: the data gate stops the run
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MODEL_CHAIN, TINY_RUN_FLAGS, bundled_rows, write_rows

from lineage import queries
from pipeline import names
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage

SPAN_PATTERN = "span-{SPAN}/*.csv"
SMALL_RUN = [
    *TINY_RUN_FLAGS,
    "--train-steps",
    "60",
    "--tuner-train-steps",
    "10",
    "--input-pattern",
    SPAN_PATTERN,
]  # later flags win
DOWNSTREAM_OF_TRAINING = {names.TRAINER, names.EVALUATOR, names.PUSHER}
RESOLVERS = {
    names.BASELINE_RESOLVER,
    names.PREVIOUS_STATISTICS_RESOLVER,
    names.HYPERPARAMETERS_RESOLVER,
}
NODES = {
    names.EXAMPLE_GEN,
    names.STATISTICS_GEN,
    names.SCHEMA_GEN,
    names.SCHEMA_IMPORTER,
    names.EXAMPLE_VALIDATOR,
    names.PREVIOUS_STATISTICS_RESOLVER,
    names.DATA_GATE,
    names.TRANSFORM,
    names.TUNER,
    names.TRAINER,
    names.BASELINE_RESOLVER,
    names.EVALUATOR,
    names.PUSHER,
}


def runner_command(data_dir: Path, output_dir: Path, *flags: str, runner: str) -> list[str]:
    return [
        sys.executable,
        str(PROJECT_ROOT / "runners" / runner),
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(output_dir),
        *SMALL_RUN,
        *flags,
    ]


def run_pipeline(
    data_dir: Path,
    output_dir: Path,
    *flags: str,
    runner: str = "beam_runner.py",
    exit_code: int = 0,
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        runner_command(data_dir, output_dir, *flags, runner=runner),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == exit_code, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def kill_when_training(data_dir: Path, output_dir: Path) -> str:
    """Start a run and SIGKILL it (and its Beam workers) a few seconds into Trainer."""
    process = subprocess.Popen(
        runner_command(data_dir, output_dir, runner="beam_runner.py"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    console = []
    for line in process.stdout:
        console.append(line)
        if "] Trainer ..." in line:
            time.sleep(3)
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(console)[-3000:]
    return "".join(console)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Spans from the bundled sample by date received (every other row), and the six runs."""
    rows = bundled_rows(every=2)
    before_2016 = [r for r in rows if r["date_received"] < "2016-01-01"]
    from_2016 = [r for r in rows if r["date_received"] >= "2016-01-01"]
    mostly_mortgages = [
        r for i, r in enumerate(from_2016) if r["product"] == "Mortgage" or i % 8 == 0
    ]

    data_dir = tmp_path_factory.mktemp("data")
    output_dir = tmp_path_factory.mktemp("outputs")
    config = PipelineConfig(data_dir=data_dir, output_dir=output_dir)
    span_files = [write_rows(before_2016, data_dir / "span-1" / "complaints.csv")]
    first = run_pipeline(data_dir, output_dir)
    rerun = run_pipeline(data_dir, output_dir, "--skip-cache-check")
    again = run_pipeline(data_dir, output_dir)
    # Strict: compared by the point estimates, so a one-step model is refused on a test split
    # this small whatever the noise (the paired test has unit tests of its own).
    worse = run_pipeline(
        data_dir,
        output_dir,
        *("--train-steps", "1", "--strict-auc-comparison"),
        runner="local_runner.py",
    )
    span_files.append(write_rows(from_2016, data_dir / "span-2" / "complaints.csv"))
    killed = kill_when_training(data_dir, output_dir)
    resumed = run_pipeline(data_dir, output_dir)
    span_files.append(write_rows(mostly_mortgages, data_dir / "span-3" / "complaints.csv"))
    drifted = run_pipeline(data_dir, output_dir, exit_code=1)
    store = lineage.connect(config.metadata_connection_config())
    consoles = {
        "first": first.stdout,
        "rerun": rerun.stdout,
        "again": again.stdout,
        "worse": worse.stdout,
        "killed": killed,
        "resumed": resumed.stdout,
        "drifted": drifted.stderr,
    }
    return config, store, consoles, span_files


def states(store, config, run_number: int) -> dict[str, str]:
    run_id = lineage.run_ids(store, config.pipeline_name)[run_number - 1]
    return {record.node_id: record.state for record in lineage.run_executions(store, run_id)}


def versions(config) -> list[Path]:
    return sorted(p for p in Path(config.serving_model_dir).iterdir() if not p.name.startswith("."))


def test_first_run_pushes_a_blessed_model(runs):
    config, store, consoles, _ = runs
    assert len(lineage.run_ids(store, config.pipeline_name)) == 6
    first_states = states(store, config, 1)
    assert set(first_states) == NODES
    assert set(first_states.values()) == {"COMPLETE"}
    first_version = versions(config)[0]
    assert (first_version / "saved_model.pb").is_file()
    assert "Blessed: yes" in consoles["first"]
    assert f"Pushed to: {first_version}" in consoles["first"]
    assert "component" in consoles["first"] and "cached/executed" in consoles["first"]
    auc = float(consoles["first"].split("auc: ")[1].split()[0])
    assert 0.0 <= auc <= 1.0


def test_the_summary_shows_schema_difference_threshold_metrics_and_fairness(runs):
    """Issue 16: SchemaGen's difference, metrics at the decision threshold, the fairness table."""
    config, _, consoles, _ = runs
    first = consoles["first"]
    # span 1's values are all in the curated schema: SchemaGen ran and found nothing new
    assert "Schema difference (inferred vs curated): none" in first
    threshold = float(first.split("Decision threshold: ")[1].split()[0])
    assert 0.0 < threshold < 1.0
    assert f"at {threshold:.4f} (the model's): precision " in first
    assert "at 0.5: precision " in first and "at 0.3: precision " in first
    assert "calibration (mean prediction / mean label" in first
    precision = first.split("(the model's): precision ")[1].split(",")[0]
    assert precision != "-"  # the threshold flags some test examples
    # Every metric with its 95% interval, on the test split; the first model has no baseline.
    assert re.search(r"\n  auc: 0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]\n", first)
    assert "intervals: Poisson bootstrap, percentile intervals, 1000 resamples" in first
    assert "  no blessed model to compare with yet" in first
    fairness = first.split("Fairness on the test split (gap: slice minus overall")[1]
    assert re.search(r"tags: \(none\) +\d+ +0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", fairness)
    assert "submitted_via: Web" in fairness
    # The CFPB's tagged groups: shown with an interval, or listed with their count.
    for group in ("tags: Older American", "tags: Servicemember"):
        shown = re.search(rf"{group} +\d+ +0\.\d{{3}} \[", fairness)
        listed = re.search(rf"not shown: .*{group} \(\d+\)", fairness)
        assert shown or listed, group


def test_the_pushed_model_decides_at_its_threshold_and_has_a_model_card(runs, tmp_path):
    """The threshold is saved in the SavedModel, served as `disputed`, and on the model card."""
    import requests
    from support.serving_harness import ServerProcess

    from models import features

    config, store, _, span_files = runs
    version = versions(config)[-1]
    decision = json.loads((version / "decision_threshold.json").read_text())
    threshold = decision["threshold"]
    card = json.loads((version / "model_card.json").read_text())
    assert card["decision"]["threshold"] == threshold
    assert card["model"]["version"] == version.name
    trace = queries.trace(store, "latest-pushed")
    assert card["lineage"]["model_id"] == trace["model"]["id"]
    assert card["data"]["input_sha256"] == trace["examples"]["input_sha256"]
    assert set(card["data"]["rows"]) == {"train", "validation", "test"}
    assert card["metrics"]["overall"]["auc"] == pytest.approx(trace["evaluation"]["metrics"]["auc"])
    value, low, high = card["metrics"]["overall"]["auc"]
    assert low <= value <= high
    assert card["fairness"]["min_examples"] == 20 and card["fairness"]["rows"]
    # The threshold saw every validation example once, and only those.
    assert decision["validation_examples"] == trace["examples"]["split_counts"]["validation"]
    assert "2017" in " ".join(card["limitations"])

    page = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         (version / "model_card.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert f"Model card: {config.pipeline_name}, version {version.name}" in page
    assert f"{threshold:.4f}" in page and "AUC by slice" in page and "<svg" in page
    html = (version / "model_card.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html  # renders offline

    rows = [r for r in bundled_rows(every=50)][:20]
    body = {"instances": [{k: r[k] for k in features.RAW_FEATURE_KEYS} for r in rows]}
    server = ServerProcess(Path(config.serving_model_dir), tmp_path).start()
    try:
        answer = requests.post(f"{server.url}:predict", json=body, timeout=30).json()
    finally:
        server.stop()
    predictions = answer["predictions"]
    assert [p[features.DECISION_KEY] for p in predictions] == [
        int(p[features.PREDICTION_KEY] > threshold) for p in predictions
    ]


def test_rerun_with_nothing_changed_is_fully_cached(runs):
    config, store, consoles, _ = runs
    rerun_states = {k: v for k, v in states(store, config, 2).items() if k not in RESOLVERS}
    assert set(rerun_states.values()) == {"CACHED"}, rerun_states
    assert consoles["rerun"].count(" cached ") >= len(rerun_states)


def test_a_rerun_with_nothing_changed_since_a_cached_run_does_not_start_tfx(runs):
    config, store, consoles, _ = runs
    rerun_id = lineage.run_ids(store, config.pipeline_name)[1]
    assert f"Nothing changed since run {rerun_id}" in consoles["again"]
    assert "Full log" not in consoles["again"]  # no log file: TFX and TensorFlow never loaded
    assert "Blessed: yes" in consoles["again"]  # run 2's report


def test_a_worse_model_is_refused_and_not_pushed(runs):
    config, store, consoles, _ = runs
    worse_states = {k: v for k, v in states(store, config, 3).items() if k not in RESOLVERS}
    executed = {node for node, state in worse_states.items() if state == "COMPLETE"}
    assert executed == DOWNSTREAM_OF_TRAINING
    assert "Blessed: no" in consoles["worse"]
    refusal = consoles["worse"].split("refused: auc changed by -")[1].splitlines()[0]
    assert "against the last blessed model (0." in refusal  # by how much, against what
    assert refusal.endswith("(strict: by the estimate)")
    assert "Pushed to: nothing pushed" in consoles["worse"]
    assert queries.run_summaries(store, config.pipeline_name)[2].pushed_to is None


def test_a_killed_run_resumes_from_the_cache_and_pushes_at_most_once(runs):
    config, store, consoles, span_files = runs
    summaries = queries.run_summaries(store, config.pipeline_name)
    assert summaries[3].status == "INTERRUPTED" and names.TRAINER not in summaries[3].executed
    unfinished = [e for e in store.get_executions() if e.last_known_state in (e.RUNNING, e.NEW)]
    assert unfinished == []  # the resumed run marked the killed run's Trainer CANCELED

    resumed = states(store, config, 5)
    before_training = {
        names.EXAMPLE_GEN,
        names.STATISTICS_GEN,
        names.SCHEMA_IMPORTER,
        names.EXAMPLE_VALIDATOR,
        names.DATA_GATE,
        names.TRANSFORM,
    }
    assert {resumed[node] for node in before_training} == {"CACHED"}  # done before the kill
    assert {resumed[node] for node in DOWNSTREAM_OF_TRAINING} == {"COMPLETE"}

    run_id = lineage.run_ids(store, config.pipeline_name)[4]
    by_node = {r.node_id: r.execution for r in lineage.run_executions(store, run_id)}
    examples = lineage.run_outputs(store, by_node[names.EXAMPLE_GEN].id)["examples"][0]
    assert lineage.custom_property(examples, "span") == 2
    assert json.loads(lineage.custom_property(examples, "input_files"))[0]["path"] == str(
        span_files[1]
    )
    baseline = lineage.run_inputs(store, by_node[names.EVALUATOR].id)["baseline_model"]
    first_run_id = lineage.run_ids(store, config.pipeline_name)[0]
    first_trainer = next(
        r for r in lineage.run_executions(store, first_run_id) if r.node_id == names.TRAINER
    )
    assert [m.id for m in baseline] == [
        lineage.run_outputs(store, first_trainer.execution.id)["model"][0].id
    ]
    # New data, no Tuner: the hyperparameters run 1 tuned are reused (issue 14.4)
    first_tuner = next(
        r for r in lineage.run_executions(store, first_run_id) if r.node_id == names.TUNER
    )
    used = lineage.run_inputs(store, by_node[names.TRAINER].id)["hyperparameters"]
    tuned = lineage.run_outputs(store, first_tuner.execution.id)["best_hyperparameters"]
    assert [h.id for h in used] == [tuned[0].id]
    assert names.TUNER not in states(store, config, 5)
    blessed = "Blessed: yes" in consoles["resumed"]
    assert len(versions(config)) == 1 + blessed
    # Span 2's model against span 1's, paired on span 2's test rows: the difference and its
    # interval, in the blessing's reasons or its refusal.
    compared = re.search(
        r"auc changed by [+-]0\.\d{4} \[[+-]0\.\d{4}, [+-]0\.\d{4}\] against the last blessed "
        r"model \(0\.\d{4}\) on the same test rows",
        consoles["resumed"],
    )
    assert compared, consoles["resumed"][-3000:]
    assert all((version / "saved_model.pb").is_file() for version in versions(config))


def test_drift_in_a_new_span_stops_the_run_before_transform(runs):
    config, store, consoles, _ = runs
    drifted = states(store, config, 6)
    assert drifted[names.DATA_GATE] == "FAILED"
    assert not {names.TRANSFORM, names.TRAINER, names.PUSHER} & set(drifted)
    assert "Data validation failed" in consoles["drifted"]
    assert "drift from the previous data, product" in consoles["drifted"]


def test_lineage_from_pushed_model_to_input_data(runs):
    config, store, _, _ = runs
    pushed = lineage.latest_pushed_model(store)
    assert pushed is not None
    node, pusher = lineage.producer(store, pushed.id)
    assert node == names.PUSHER

    pusher_inputs = lineage.run_inputs(store, pusher.id)
    node, trainer = lineage.producer(store, pusher_inputs["model"][0].id)
    assert node == names.TRAINER
    assert lineage.producer(store, pusher_inputs["model_blessing"][0].id)[0] == names.EVALUATOR

    trainer_inputs = lineage.run_inputs(store, trainer.id)
    assert lineage.producer(store, trainer_inputs["hyperparameters"][0].id)[0] == names.TUNER
    assert lineage.producer(store, trainer_inputs["transform_graph"][0].id)[0] == names.TRANSFORM
    node, transform = lineage.producer(store, trainer_inputs["examples"][0].id)
    assert node == names.TRANSFORM

    examples = lineage.run_inputs(store, transform.id)["examples"][0]
    node, example_gen = lineage.producer(store, examples.id)
    assert node == names.EXAMPLE_GEN
    assert lineage.execution_property(example_gen, "input_base") == str(config.data_dir)

    upstream_nodes = {step.node_id for step in lineage.upstream(store, pushed.id)}
    assert {*MODEL_CHAIN, names.SCHEMA_IMPORTER} <= upstream_nodes


def lineage_cli(config: PipelineConfig, *args: str, capsys) -> str:
    from lineage import command

    assert command.main(["--output-dir", str(config.output_dir), *args]) == 0
    return capsys.readouterr().out


def test_lineage_runs_lists_cached_and_executed_components(runs, capsys):
    config, _, _, _ = runs
    listed = json.loads(lineage_cli(config, "--json", "runs", capsys=capsys))
    assert [run["status"] for run in listed] == [
        "COMPLETE",
        "COMPLETE",
        "COMPLETE",
        "INTERRUPTED",
        "COMPLETE",
        "FAILED",
    ]
    # resolvers always run; from run 2 on, LatestHyperparametersResolver stands in for the Tuner
    assert [len(run["executed"]) for run in listed[:3]] == [13, 3, 6]
    assert [len(run["cached"]) for run in listed[:3]] == [0, 10, 7]  # no Tuner after run 1
    assert listed[0]["pushed_to"] is not None and listed[2]["pushed_to"] is None
    table = lineage_cli(config, "runs", capsys=capsys)
    assert "#3" in table and "INTERRUPTED" in table


def test_lineage_trace_reaches_the_input_file_content(runs, capsys):
    config, store, _, _ = runs
    found = json.loads(lineage_cli(config, "--json", "trace", "latest-pushed", capsys=capsys))
    (input_file,) = found["examples"]["input_files"]
    data_file = Path(input_file["path"])
    assert data_file.parent.parent == Path(config.data_dir)  # span-N/complaints.csv
    assert input_file["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert found["examples"]["input_base"] == config.data_dir
    assert set(found["examples"]["split_counts"]) == {"train", "validation", "test"}
    assert found["training"]["train_steps"] == 60
    assert found["training"]["hyperparameters"]  # the Tuner's choice
    first_run = lineage.run_ids(store, config.pipeline_name)[0]
    assert found["training"]["hyperparameters_source"]["tuned_in_run"] == first_run
    auc, low, high = found["evaluation"]["metrics"]["auc"]  # with its 95% interval
    assert found["evaluation"]["blessed"] is True and 0 <= low <= auc <= high <= 1
    assert found["model"]["git_revision"] and found["model"]["package_versions"]["tfx"] == "1.16.0"
    assert found["pushed"][0]["destination"].startswith(config.serving_model_dir)
    assert 0 < found["evaluation"]["decision_threshold"] < 1
    assert found["evaluation"]["fairness"]["rows"]
    text = lineage_cli(config, "trace", "latest-pushed", capsys=capsys)
    assert f"sha256 {input_file['sha256']}" in text
    assert "decision threshold: " in text and "Fairness on the test split (gap: slice minus" in text
    reused = found["model"]["trained_in_run"] != first_run
    assert ("hyperparameters (reused, tuned in run " if reused else "(tuned in this run") in text
    assert found["schema_difference"] == []
    assert "difference (inferred vs curated): none" in text


def test_lineage_uses_lists_the_blessed_and_the_refused_model(runs, capsys):
    config, _, _, _ = runs
    models = json.loads(lineage_cli(config, "--json", "uses", config.data_dir, capsys=capsys))
    assert [(m["blessed"], bool(m["pushed_to"])) for m in models][:2] == [
        (True, True),
        (False, False),
    ]
    assert len(models) == 3  # span 1's, the refused one, span 2's


def test_lineage_diff_shows_changed_steps_and_metrics(runs, capsys):
    config, _, _, _ = runs
    found = json.loads(lineage_cli(config, "--json", "diff", "#2", "#3", capsys=capsys))
    assert found["settings"]["Trainer.train_args.num_steps"] == [60, 1]
    assert found["same_data"] is True and found["schema_changes"] == []
    assert all(d["value"] == 0 for d in found["drift"].values())  # same statistics artifact
    overall_auc = found["metrics"]["Overall"]["auc"]
    assert overall_auc[0] != overall_auc[1]  # a different model
    text = lineage_cli(config, "diff", "#2", "#3", capsys=capsys)
    assert "Trainer.train_args.num_steps: 60 -> 1" in text


def test_lineage_export_writes_json_dot_and_svg(runs, tmp_path, capsys):
    config, store, _, _ = runs
    lineage_cli(config, "export", "-o", str(tmp_path / "lineage.json"), capsys=capsys)
    graph = json.loads((tmp_path / "lineage.json").read_text())
    assert len(graph["executions"]) == len(store.get_executions())
    pusher_inputs = {
        event["key"]
        for event in graph["events"]
        for execution in graph["executions"]
        if event["execution_id"] == execution["id"]
        and execution["node_id"] == names.PUSHER
        and event["direction"] == "input"
    }
    assert pusher_inputs == {"model", "model_blessing"}
    lineage_cli(config, "export", "-o", str(tmp_path / "lineage.svg"), capsys=capsys)
    assert "<svg" in (tmp_path / "lineage.svg").read_text()


def test_lineage_command_answers_bad_questions_plainly(runs, tmp_path):
    config, _, _, _ = runs

    def ask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lineage", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=PROJECT_ROOT,
        )

    unknown = ask("--output-dir", str(config.output_dir), "trace", "99999")
    assert unknown.returncode == 1 and "no artifact with id 99999" in unknown.stderr
    empty = ask("--output-dir", str(tmp_path), "runs")
    assert empty.returncode == 1 and "no MLMD store at" in empty.stderr
    assert "Traceback" not in unknown.stderr + empty.stderr


def test_lineage_command_edge_cases_from_the_review(runs, tmp_path, capsys, monkeypatch):
    """Issue 11: a read-only command, a diff of what both runs recorded, export and uses."""
    config, _, _, _ = runs
    # A 0-byte store is refused and stays 0 bytes (no MLMD schema written into it).
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.sqlite").touch()
    from lineage import command

    assert command.main(["--output-dir", str(tmp_path / "empty"), "runs"]) == 1
    assert "the file is empty" in capsys.readouterr().err
    assert (tmp_path / "empty" / "metadata.sqlite").stat().st_size == 0
    # The first run and its fully cached rerun: no setting differs.
    unchanged = json.loads(lineage_cli(config, "--json", "diff", "#1", "#2", capsys=capsys))
    assert unchanged["settings"] == {}
    # --json export answers in JSON; a missing Graphviz writes nothing.
    written = json.loads(
        lineage_cli(config, "--json", "export", "-o", str(tmp_path / "g.json"), capsys=capsys)
    )
    assert written["written"] == str(tmp_path / "g.json") and written["executions"] > 0
    from lineage import export

    monkeypatch.setattr(export.shutil, "which", lambda name: None)
    argv = ["--output-dir", str(config.output_dir), "export", "-o", str(tmp_path / "g.svg")]
    assert command.main(argv) == 1
    assert "needs Graphviz" in capsys.readouterr().err and not (tmp_path / "g.svg").exists()
    # uses: a data folder reached through a symlink is the same folder.
    (tmp_path / "link").symlink_to(config.data_dir)

    def uses(path) -> list:
        return json.loads(lineage_cli(config, "--json", "uses", str(path), capsys=capsys))

    assert uses(tmp_path / "link") == uses(config.data_dir) != []

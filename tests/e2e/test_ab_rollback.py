"""The A/B test on live outcomes, end to end: two versions pushed by real pipeline runs, one
trained 300 steps and one trained 5; the real server serves the first and shadows the second
(python -m monitoring.rollout enter, then a reload); real complaints of the bundled sample are
replayed through REST (python -m feedback.replay) and their known outcomes arrive. With too
few outcomes the report says keep testing and how many more it needs; with all of them it
says roll back, python -m monitoring.rollout auto rolls the candidate back on the server, and
MLMD records the decision linked to both pushed models.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import requests
from conftest import TINY_RUN_FLAGS, write_quarter_sample
from support.serving_harness import ServerProcess

from pipeline.config import PipelineConfig
from pipeline.metadata import decisions
from pipeline.metadata.store import connect, pushed_destination

RUN_TIMEOUT_S = 900


def pipeline(data_dir: Path, output_dir: Path, *flags: str) -> str:
    command = [sys.executable, "-m", "runners.beam_runner", "--data-dir", str(data_dir)]
    command += ["--output-dir", str(output_dir), *TINY_RUN_FLAGS, *flags]
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def command(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=600
    )


def shadow_counts(request_log: Path) -> dict[int, int]:
    with sqlite3.connect(request_log) as log:
        return dict(log.execute("SELECT shadow, COUNT(*) FROM predictions GROUP BY shadow"))


def versions(base: Path) -> list[int]:
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())


def test_a_worse_candidate_is_rolled_back_on_its_outcomes(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    rows_file = write_quarter_sample(data)
    pipeline(data, out, "--train-steps", "300")
    # The candidate: 5 steps, pushed whatever its AUC (the online test is what judges it).
    pipeline(data, out, "--train-steps", "5", "--max-auc-drop", "1.0")
    base = out / "serving_model"
    stable, candidate = versions(base)
    where = ["--model-config", str(out / "models.config"), "--output-dir", str(out)]

    # The first version is stable (the files are new); the server starts on them.
    entered = command(
        "monitoring.rollout",
        "enter",
        *where,
        "--version",
        str(stable),
        "--base-path",
        str(base),
        "--no-reload",
    )
    assert entered.returncode == 0, entered.stderr
    server = ServerProcess(
        base,
        tmp_path,
        f"--model_config_file={out / 'models.config'}",
        f"--rollout_file={out / 'rollout.json'}",
    ).start()
    rest = server.url.rsplit("/v1/", 1)[0]
    try:
        # The candidate enters as a shadow of every request: the server reloads, loads it.
        entered = command(
            "monitoring.rollout",
            "enter",
            *where,
            "--version",
            str(candidate),
            "--shadow-fraction",
            "1",
            "--url",
            rest,
        )
        assert entered.returncode == 0, entered.stderr
        assert entered.stdout.startswith(f"enter: version {candidate} enters as shadow of 100% ")
        assert "applied: the server at" in entered.stdout
        status = requests.get(f"{server.url}/labels/canary", timeout=10)
        assert status.status_code == 200, status.text

        # Real complaints through REST, each a new complaint id; their outcomes arrive.
        outcomes = tmp_path / "outcomes.csv"
        replay = command(
            "feedback.replay",
            "--rows",
            str(rows_file),
            "--new-ids",
            "--url",
            server.url,
            "--outcomes-out",
            str(outcomes),
        )
        assert replay.returncode == 0, replay.stderr
        with open(rows_file, newline="", encoding="utf-8") as handle:
            sent = len(list(csv.DictReader(handle)))
        # Every request answered once and shadowed once. The shadow's rows are written after
        # the answers (nobody waits for them), so the last ones may still be on their way.
        deadline = time.monotonic() + 30
        while (logged := shadow_counts(server.request_log)) != {0: sent, 1: sent}:
            assert time.monotonic() < deadline, (logged, sent)
            time.sleep(0.2)

        # Too few outcomes so far: keep testing, and how many more.
        few = tmp_path / "few.csv"
        few.write_text("".join(outcomes.read_text().splitlines(keepends=True)[:61]))
        report = command(
            "monitoring.abtest",
            "--request-log",
            str(server.request_log.parent),
            "--outcomes",
            str(few),
            "--model-config",
            str(out / "models.config"),
        )
        assert report.returncode == 3, report.stdout + report.stderr
        assert report.stdout.startswith(
            f"KEEP TESTING: canary version {candidate} against stable version {stable}"
        )
        assert "too few outcomes to judge" in report.stdout
        assert "outcomes still needed: about " in report.stdout

        # All outcomes: the report says roll back, and auto does it on the server.
        page, data_file = tmp_path / "abtest.html", tmp_path / "abtest.json"
        report = command(
            "monitoring.abtest",
            "--request-log",
            str(server.request_log.parent),
            "--outcomes",
            str(outcomes),
            "--model-config",
            str(out / "models.config"),
            "--html",
            str(page),
            "--json",
            str(data_file),
        )
        assert report.returncode == 1, report.stdout + report.stderr
        found = json.loads(data_file.read_text())
        paired = found["comparisons"]["paired"]
        assert paired["outcomes"] == sent and paired["difference"][2] < -0.02, paired
        assert found["arms"][0]["threshold_source"] == "decision_threshold.json"
        assert "<script" not in page.read_text()

        judged = command(
            "monitoring.rollout",
            "auto",
            *where,
            "--url",
            rest,
            "--request-log",
            str(server.request_log.parent),
            "--outcomes",
            str(outcomes),
        )
        assert judged.returncode == 1, judged.stdout + judged.stderr
        assert "roll back: A/B verdict: AUC candidate - control -" in judged.stdout
        assert requests.get(f"{server.url}/labels/canary", timeout=10).status_code == 404
        answer = requests.post(
            f"{server.url}:predict", json={"instances": [{"product": "Mortgage"}]}, timeout=30
        )
        assert answer.headers["X-Model-Version"] == str(stable)
    finally:
        assert server.stop() == 0

    # MLMD: the decision, linked to both pushed models, naming its evidence.
    store = connect(PipelineConfig(output_dir=str(out)).metadata_connection_config())
    pushed = {
        int(Path(pushed_destination(p)).name): p.id
        for p in store.get_artifacts_by_type("PushedModel")
        if pushed_destination(p)
    }
    [*_, last] = decisions.rollout_decisions(store, pushed[candidate])
    assert (last["decision"], last["role"], last["trigger"]) == (
        "roll back",
        "candidate",
        "a/b verdict",
    )
    assert last["state"] == "COMPLETE" and last["outcomes"] == str(outcomes.resolve())
    assert last["request_log"][0]["path"] == str(server.request_log.resolve())
    assert last["metrics"]["comparisons"]["paired"]["outcomes"] == sent
    [*_, as_control] = decisions.rollout_decisions(store, pushed[stable])
    assert as_control["id"] == last["id"] and as_control["role"] == "control"
    # The lineage command's trace of the pushed model shows the decision and its evidence.
    traced = command("lineage", "--output-dir", str(out), "trace", "latest-pushed")
    assert traced.returncode == 0, traced.stderr
    assert f"Rollout decision {last['id']} at " in traced.stdout
    assert ": roll back (this model as candidate, by a/b verdict)" in traced.stdout
    assert f"outcomes {outcomes.resolve()}  sha256 " in traced.stdout

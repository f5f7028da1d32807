"""python -m monitoring.abtest on request logs the server's own RequestLog wrote: real rows of the
bundled sample with their known outcomes, scored by a control and a candidate of chosen skill.
The decision rule, the outcomes-needed estimate, every bad input, the page in Chromium."""

from __future__ import annotations

import json
import sqlite3
import subprocess

import numpy as np
import pytest
from abtest_logs import ab_traffic, outcomes_file, scores, write_log
from conftest import bundled_rows

from models import features
from monitoring import ab_stats, abtest
from monitoring.ab_stats import Arm, Comparison, Rule
from pipeline.components import metrics


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [r for r in bundled_rows() if r[features.ID_KEY]][:1500]


def run(tmp_path, log, outcomes, *flags) -> int:
    page, data = tmp_path / "page.html", tmp_path / "report.json"
    base = ["--request-log", str(log), "--outcomes", str(outcomes), "--resamples", "300"]
    return abtest.main([*base, "--html", str(page), "--json", str(data), *flags])


def test_a_clearly_worse_shadow_is_rolled_back(rows, tmp_path, capsys):
    log = write_log(tmp_path / "log", ab_traffic(rows, candidate_skill=0.0))
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "o.csv")) == 1
    out = capsys.readouterr().out
    assert out.startswith("ROLL BACK: canary version 2 against stable version 1 (model cfpb)")
    report = json.loads((tmp_path / "report.json").read_text())
    paired = report["comparisons"]["paired"]
    assert paired["outcomes"] == 1500 and paired["difference"][2] < -0.02
    assert report["decision"]["basis"] == "paired"
    assert [a["name"] for a in report["arms"]] == ["stable v1 served", "canary v2 shadow"]
    assert report["arms"][0]["requests"] == 1500 and report["arms"][1]["latency_p50"] == 7.0
    assert report["log"][0]["first_row"] == 1 and report["log"][0]["last_row"] == 3000


def test_an_equal_candidate_is_promoted(rows, tmp_path, capsys):
    log = write_log(tmp_path / "log", ab_traffic(rows, candidate_skill=1.0))
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "o.csv"), "--max-auc-drop", "0.1") == 0
    assert capsys.readouterr().out.startswith("PROMOTE: canary version 2")


def test_a_canary_split_is_compared_unpaired_with_its_own_complaints(rows, tmp_path, capsys):
    log = write_log(tmp_path / "log", ab_traffic(rows, 1.0, 0.0, shadow=False, canary_every=2))
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "o.csv")) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["comparisons"]["paired"] is None
    assert report["comparisons"]["unpaired"]["outcomes"] == 1500
    assert [a["requests"] for a in report["arms"]] == [750, 750]


def test_too_few_outcomes_keep_testing_and_say_how_many_more(rows, tmp_path, capsys):
    log = write_log(tmp_path / "log", ab_traffic(rows, candidate_skill=0.6))
    code = run(tmp_path, log, outcomes_file(rows[:80], tmp_path / "o.csv"))
    assert code == 3
    out = capsys.readouterr().out
    assert out.startswith("KEEP TESTING: canary version 2")
    assert (
        "too few outcomes to judge (stable v1 served 80, canary v2 shadow 80; at least 100" in out
    )
    needed = json.loads((tmp_path / "report.json").read_text())["decision"]["needed"]
    assert needed >= 20 and f"outcomes still needed: about {needed:,}" in out


def comparison(d: float, low: float, high: float, n: int = 400) -> Comparison:
    return Comparison("paired", n, 0.62, 0.62 + d, [d, low, high])


def arms(n: int = 400) -> tuple[Arm, list[Arm]]:
    return Arm("stable", 1, False, n, n, n), [Arm("canary", 2, True, n, n, n)]


@pytest.mark.parametrize(
    ("difference", "decision"),
    [
        ((-0.005, -0.015, 0.006), ab_stats.PROMOTE),  # all above -0.02
        ((-0.08, -0.11, -0.05), ab_stats.ROLL_BACK),  # all below -0.02
        ((-0.01, -0.05, 0.03), ab_stats.KEEP_TESTING),  # contains -0.02
        ((-0.03, -0.06, 0.001), ab_stats.KEEP_TESTING),
    ],
)
def test_the_decision_rule(difference, decision):
    control, candidates = arms()
    verdict = ab_stats.decide(comparison(*difference), control, candidates, Rule(0.02, 100))
    assert verdict.decision == decision, verdict.reason
    assert (verdict.needed is not None) == (decision == ab_stats.KEEP_TESTING)


def test_the_outcomes_needed_come_from_the_observed_half_width():
    # d = -0.01 is 0.01 above the boundary -0.02; the half-width towards it is 0.04, so the
    # interval must shrink 4-fold: 16 times the 400 outcomes, 6,000 more.
    assert ab_stats.outcomes_needed(comparison(-0.01, -0.05, 0.03), 0.02) == 6000
    # Below the boundary the upper half-width counts: (0.03 / 0.01)^2 * 400 - 400.
    assert ab_stats.outcomes_needed(comparison(-0.03, -0.05, 0.0), 0.02) == 3200
    assert ab_stats.outcomes_needed(comparison(-0.02, -0.05, 0.01), 0.02) is None  # on it


def test_the_estimate_is_about_what_a_larger_sample_needs():
    """Paired draws of one population: the estimate from 300 pairs, then that many more pairs
    give an interval that leaves the boundary."""
    rng = np.random.default_rng(7)
    population = rng.binomial(1, 0.2, 200_000).astype(float)
    control_all, candidate_all = scores(population, 1.0, 3), scores(population, 0.85, 4)

    def compare(n: int) -> Comparison:
        found = metrics.evaluate_slices(
            candidate_all[:n], population[:n], {}, 0.5, control_all[:n], resamples=400
        )["difference"]["Overall"]["auc"]
        return Comparison("paired", n, 0, 0, found.as_list())

    first = compare(300)
    needed = ab_stats.outcomes_needed(first, 0.02)
    assert needed is not None and 300 < needed < 100_000
    later = compare(300 + needed)
    assert later.difference[2] < -0.02 or later.difference[1] > -0.02, later.difference


def as_format_1(log_file) -> None:
    with sqlite3.connect(log_file) as connection:
        for column in ("arm", "assignment", "shadow"):
            connection.execute(f"ALTER TABLE predictions DROP COLUMN {column}")
        connection.execute("UPDATE log_info SET value = 'cfpb-request-log/1' WHERE key = 'format'")


def v1_log(tmp_path, rows):
    log = write_log(tmp_path / "log", ab_traffic(rows[:50], shadow=False))
    as_format_1(log / "requests.sqlite")
    return log


BAD_INPUT = {
    "no matching ids": (
        lambda t, r: write_log(t / "log", ab_traffic(r[:50])),
        lambda t, r: outcomes_file(r[100:150], t / "o.csv"),
        "none of its 50 complaint ids is in the request log (50 logged complaint ids, e.g. ",
    ),
    "a log from before the format change": (
        v1_log,
        lambda t, r: outcomes_file(r[:50], t / "o.csv"),
        "is a request log from before the rollout (format 'cfpb-request-log/1'): it records no "
        "arm per request",
    ),
    "no log": (
        lambda t, r: t / "nowhere",
        lambda t, r: outcomes_file(r[:50], t / "o.csv"),
        "does not exist (the server's --request_log_dir)",
    ),
    "outcomes without labels": (
        lambda t, r: write_log(t / "log", ab_traffic(r[:50])),
        lambda t, r: (t / "o.csv").write_text("a,b\n1,2\n") and t / "o.csv",
        "the header needs complaint_id and consumer_disputed",
    ),
    "only the control's arm": (
        lambda t, r: write_log(t / "log", ab_traffic(r[:50], shadow=False)),
        lambda t, r: outcomes_file(r[:50], t / "o.csv"),
        "no candidate: the log has only the control's arm 'stable'",
    ),
    "no control": (
        lambda t, r: write_log(t / "log", ab_traffic(r[:50], canary_every=1)),
        lambda t, r: outcomes_file(r[:50], t / "o.csv"),
        "no request was served by the control 'stable' in the log (its arms: canary 50)",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, rows, tmp_path, capsys):
    make_log, make_outcomes, words = BAD_INPUT[case]
    code = run(tmp_path, make_log(tmp_path, rows), make_outcomes(tmp_path, rows))
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("abtest: ")
    assert words in captured.err, captured.err
    assert not (tmp_path / "page.html").exists() and not (tmp_path / "report.json").exists()


def test_a_threshold_that_can_never_decide_is_refused(rows, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path, tmp_path, tmp_path / "o.csv", "--max-auc-drop", "nan")
    assert stopped.value.code == 2
    assert "--max-auc-drop: must be a number from 0 to 1" in capsys.readouterr().err


def test_the_page_renders_offline_in_chromium(rows, tmp_path, capsys):
    log = write_log(tmp_path / "log", ab_traffic(rows, candidate_skill=0.0))
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "o.csv")) == 1
    page = tmp_path / "page.html"
    source = page.read_text()
    assert "<script" not in source and "<link" not in source
    assert source.count("http") == source.count('xmlns="http://www.w3.org/2000/svg"')
    chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"]
    dom = subprocess.run(
        [*chromium, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert '<span class="badge roll-back" id="decision">ROLL BACK</span>' in dom.stdout
    arms_table = dom.stdout.split('<table id="arms">')[1].split("</table>")[0]
    assert arms_table.count("<tr>") == 3 and "canary v2 shadow" in arms_table
    plot = dom.stdout.split('<svg id="difference-plot"')[1].split("</svg>")[0]
    assert plot.count("<rect") == 1 and plot.count("<circle") == 1
    shot = tmp_path / "page.png"
    subprocess.run([*chromium, f"--screenshot={shot}", page.as_uri()], capture_output=True,
                   timeout=120)  # fmt: skip
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    red = np.sum((pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80))
    assert red > 1000  # the ROLL BACK badge and the value dots


def test_rotated_files_of_the_older_format_are_left_out_and_named(rows, tmp_path, capsys):
    log = v1_log(tmp_path, rows)
    old = log / "requests-20260101T000000000000Z.sqlite"
    (log / "requests.sqlite").rename(old)
    write_log(log, ab_traffic(rows[50:650], candidate_skill=0.0))
    assert run(tmp_path, log, outcomes_file(rows, tmp_path / "o.csv")) == 1
    out = capsys.readouterr().out
    assert f"left out (format 1, before any rollout): {old}" in out
    assert json.loads((tmp_path / "report.json").read_text())["arms"][0]["requests"] == 600

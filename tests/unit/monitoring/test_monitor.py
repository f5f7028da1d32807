"""monitoring.monitor's parts without a pipeline run: TFDV's checks on real request logs written by
the server's own RequestLog, the prediction shift, every bad input, and the page in Chromium.

The baseline is the curated schema and TFDV statistics of half the bundled sample; traffic is
the other half (healthy) or that half changed one way (skewed, a new value, a missing feature).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import bundled_rows

from models import features
from monitoring import comparisons, monitor, views, window
from pipeline.config import SCHEMA_FILE
from serving.request_log import Entry, RequestLog

LOGGED = set(features.RAW_FEATURE_KEYS)


@pytest.fixture(scope="module")
def halves() -> tuple[list[dict], list[dict]]:
    rows = bundled_rows(every=2)
    # Every 8th of the other half: the sample is three extracts in a row (one is New York's),
    # so the first 400 rows would be skewed on state.
    return rows[::2], rows[1::2][::8]


@pytest.fixture(scope="module")
def baseline(halves) -> comparisons.Baseline:
    import pandas as pd
    import tensorflow_data_validation as tfdv

    frame = pd.DataFrame(halves[0])
    frame[features.LABEL_KEY] = frame[features.LABEL_KEY].astype(int)
    return comparisons.Baseline(
        model_version=1,
        model_dir="unused",
        schema=tfdv.load_schema_text(str(SCHEMA_FILE)),
        train_statistics=tfdv.generate_statistics_from_dataframe(frame),
        test_files=[],
    )


def write_log(directory: Path, rows: list[dict], log_features: str = "all", seed: int = 0):
    """Rows as the server logs them: plain feature objects, a probability each."""
    probabilities = np.random.default_rng(seed).beta(2, 8, len(rows)).astype(np.float32)
    log = RequestLog(str(directory), log_features=log_features, synchronous="OFF")
    for index, row in enumerate(rows):
        example = {k: ("bytes", [v.encode()]) for k, v in row.items() if k in LOGGED}
        outputs = {features.PREDICTION_KEY: probabilities[index : index + 1]}
        entry = Entry(f"r{index}", time.time(), "cfpb", 7, None, "rest", "serving_default",
                      [example], LOGGED, [], outputs, 1.0)  # fmt: skip
        log.append(entry).result()
    log.close()
    return directory


def judge(baseline, tmp_path, rows, log_features="all"):
    log = write_log(tmp_path / "log", rows, log_features)
    logged, _, _ = window.read_window([log / "requests.sqlite"], "2000", "3000", None)
    kept = window.logged_features({log_features})
    test_scores = np.random.default_rng(1).beta(2, 8, 2000)
    return monitor.judge(baseline, logged, kept, comparisons.Thresholds(), test_scores)


def alerted(report: dict) -> list[str]:
    return [skew["feature"] for skew in report["skew"] if skew["alert"]]


def test_traffic_like_the_training_data_is_healthy(baseline, halves, tmp_path):
    report = judge(baseline, tmp_path, halves[1])
    assert report["status"] == "healthy", report["alerts"]
    assert {s["feature"] for s in report["skew"]} == set(features.CATEGORICAL_KEYS)
    assert all(s["measure"] == "l_infty" for s in report["skew"])
    assert not report["prediction"]["alert"] and report["prediction"]["psi"] < 0.15


def test_one_product_only_is_skew_on_that_feature_alone(baseline, halves, tmp_path):
    report = judge(baseline, tmp_path, [{**row, "product": "Mortgage"} for row in halves[1]])
    assert alerted(report) == ["product"] and report["anomalies"] == []
    assert report["alerts"][0].startswith("skew: product l_infty ")


def test_a_value_outside_the_domain_is_an_anomaly_naming_it(baseline, halves, tmp_path):
    rows = [
        {**r, "product": "Crypto wallet"} if i % 10 == 0 else r for i, r in enumerate(halves[1])
    ]
    report = judge(baseline, tmp_path, rows)
    (anomaly,) = report["anomalies"]
    assert anomaly["feature"] == "product" and "Crypto wallet" in anomaly["description"]
    assert anomaly["kind"] == "ENUM_TYPE_UNEXPECTED_STRING_VALUES"
    assert alerted(report) == []  # a tenth of the rows: an anomaly, not yet skew


def test_a_feature_missing_from_requests_is_an_anomaly(baseline, halves, tmp_path):
    rows = [{k: v for k, v in r.items() if k != "state" or i % 3} for i, r in enumerate(halves[1])]
    report = judge(baseline, tmp_path, rows)
    assert {a["feature"] for a in report["anomalies"]} == {"state"}, report["anomalies"]
    assert "FEATURE_TYPE_LOW_FRACTION_PRESENT" in {a["kind"] for a in report["anomalies"]}
    assert report["missing"] == {"state": len(rows[::3])}


def test_a_log_without_the_text_does_not_miss_the_text(baseline, halves, tmp_path):
    report = judge(baseline, tmp_path, halves[1], log_features="no_text")
    assert report["status"] == "healthy", report["alerts"]
    assert features.TEXT_KEY not in report["missing"]


def test_a_skew_comparator_in_the_curated_schema_wins(baseline, halves, tmp_path):
    curated = type(baseline.schema)()
    curated.CopyFrom(baseline.schema)
    company = next(f for f in curated.feature if f.name == "company")
    company.skew_comparator.infinity_norm.threshold = 0.001
    before = curated.SerializeToString()
    strict = comparisons.Baseline(1, "unused", curated, baseline.train_statistics, [])
    report = judge(strict, tmp_path, halves[1])
    assert alerted(report) == ["company"]
    skews = {s["feature"]: s["threshold"] for s in report["skew"]}
    assert skews["company"] == 0.001 and skews["product"] == comparisons.Thresholds().skew_linf
    assert curated.SerializeToString() == before  # only the monitor's copy changed


def test_prediction_shift_is_psi_over_the_eval_deciles():
    rng = np.random.default_rng(0)
    test_scores = rng.beta(2, 8, 5000)
    same = comparisons.prediction_shift(test_scores, rng.beta(2, 8, 500), 0.25)
    assert same.psi < 0.05 and not same.alert
    deciles = np.round(np.quantile(test_scores, np.linspace(0, 1, 11)), 6)
    assert set(deciles) <= set(same.edges) and max(same.test_share) <= 0.1 + 1e-3
    shifted = comparisons.prediction_shift(test_scores, rng.beta(4, 6, 500), 0.25)
    assert shifted.alert and shifted.window_mean > shifted.test_mean
    constant = comparisons.prediction_shift(np.full(100, 0.2), np.full(50, 0.7), 0.25)
    assert np.isfinite(constant.psi) and constant.alert  # one model answer: still measured


def cli(tmp_path, *flags: str) -> list[str]:
    base = ["--output-dir", str(tmp_path / "outputs"), "--html", str(tmp_path / "page.html")]
    return [*base, *flags]


BAD_INPUT = {
    "missing log": (lambda d: d / "nowhere", [], "no request log at"),
    "empty log": (lambda d: write_log(d / "empty", []), [], "holds no predictions yet"),
    "not sqlite": (lambda d: _file(d / "requests.sqlite", "hello"), [], "not a readable request"),
    "other sqlite": (lambda d: _other_sqlite(d / "x.sqlite"), [], "not a readable request log"),
    "nothing in the window": (None, ["--until", "2001-01-01"], "no predictions from 1970-01-01"),
    "bad --since": (None, ["--since", "yesterday"], "--since 'yesterday' is not an ISO time"),
    # 99999999 days back is "all": it used to end in OverflowError (issue 23).
    "--since past year 1": (None, ["--since", "99999999d"], "no MLMD store at"),
    "too few rows": (None, ["--last", "20"], "only 20 predictions of cfpb version 7"),
    "unknown version": (None, ["--model-version", "3"], "no predictions of cfpb version 3"),
    "features not logged": (
        lambda d: write_log(d / "none", [{"product": "x"}] * 120, "none"),
        [],
        "keeps no feature values",
    ),
    "no MLMD store": (None, [], "no MLMD store at"),
}


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _other_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x)")
    return path


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, halves, tmp_path, capsys):
    make, flags, words = BAD_INPUT[case]
    log = make(tmp_path) if make else write_log(tmp_path / "log", halves[1][:150])
    code = monitor.main(cli(tmp_path, "--request-log", str(log), "--since", "all", *flags))
    assert code == monitor.CANNOT_JUDGE
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("monitor: ") and words in captured.err, captured.err
    assert not (tmp_path / "page.html").exists()
    assert not list(tmp_path.glob(".page.html.*"))  # no partial file left either


def test_the_page_renders_offline_in_chromium(baseline, halves, tmp_path):
    report = judge(baseline, tmp_path, [{**row, "product": "Mortgage"} for row in halves[1]])
    report.update(
        model={"name": "cfpb", "version": 7},
        window={"since": "a", "until": "b", "rows": 400, "first": "c", "newest": "d",
                "other_models": {}},
        baseline={"schema": "2 /x/SchemaImporter/schema/2"}, seconds={"total": 1.0},
    )  # fmt: skip
    page = tmp_path / "report.html"
    page.write_text(views.html(report))
    source = page.read_text()
    assert "<script" not in source and "<link" not in source
    assert source.count("http") == source.count('xmlns="http://www.w3.org/2000/svg"')
    chromium = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1000,1400",
    ]
    url = page.as_uri()
    dom = subprocess.run(
        [*chromium, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    skew_table = dom.stdout.split('<table id="skew">')[1].split("</table>")[0]
    product_row = skew_table.split("<td>product</td>")[1].split("</tr>")[0]
    assert "ALERT" in product_row and skew_table.count("<tr") == 1 + len(report["skew"])
    plot = dom.stdout.split('<svg id="prediction-plot"')[1].split("</svg>")[0]
    assert plot.count("<rect") == 2 * len(report["prediction"]["test_share"])
    shot = tmp_path / "page.png"
    subprocess.run([*chromium, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    red = np.sum((pixels[:, 0] > 180) & (pixels[:, 1] < 80) & (pixels[:, 2] < 80))
    blue = np.sum((pixels[:, 2] > 150) & (pixels[:, 0] < 60))
    assert red > 2000 and blue > 2000  # the ALERT badge and skew bar; the live bars drawn
    assert json.dumps(report)  # the same report is what --json writes


def test_the_window_spans_rotated_files_and_last_takes_the_newest(halves, tmp_path):
    log = write_log(tmp_path / "log", halves[1][:30])
    (log / "requests.sqlite").rename(log / "requests-20260101T000000000000Z.sqlite")
    write_log(log, halves[1][30:50])
    files = window.log_files(log)
    assert [f.name for f in files] == ["requests-20260101T000000000000Z.sqlite", "requests.sqlite"]
    rows, settings, total = window.read_window(files, "2000", "3000", None)
    assert (len(rows), total, settings) == (50, 50, {"all"})
    newest, _, _ = window.read_window(files, "2000", "3000", 25)
    times = [row[1] for row in rows]
    assert [row[1] for row in newest] == times[:25] and times == sorted(times, reverse=True)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--skew-threshold", "nan"], "--skew-threshold: must be a number above 0 and at most 1"),
        (["--skew-threshold", "-1"], "--skew-threshold: must be a number above 0"),
        (["--min-rows", "-1"], "--min-rows: must be an integer from 1 to"),
        (["--last", "0"], "--last: must be an integer from 1 to"),
    ],
)
def test_thresholds_that_would_never_alert_are_refused(flags, words, halves, tmp_path, capsys):
    """nan reported HEALTHY on traffic whose product distance was 0.96 (issue 23)."""
    log = write_log(tmp_path / "log", halves[1][:150])
    with pytest.raises(SystemExit) as stopped:
        monitor.main(cli(tmp_path, "--request-log", str(log), *flags))
    assert stopped.value.code == monitor.CANNOT_JUDGE
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m monitoring: error: argument") and words in error
    assert not (tmp_path / "page.html").exists()

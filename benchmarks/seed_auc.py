"""Test AUC of the default run over several seeds, next to its 95% interval: is the spread
across seeds (the noise of training) inside the interval (the noise of the test set)?

    .venv/bin/python benchmarks/seed_auc.py [--seeds 0 1 2 3 4] [--project DIR]

Each seed is a first run in a fresh output folder (the Tuner searches again). The CFPB's two
tagged groups are shown with theirs. `--project` runs another checkout's runner (say, a
worktree of the commit before a change) with this interpreter, so before and after are
measured in one session; a checkout without intervals shows its point values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import machine, markdown_table

from lineage import queries
from pipeline import names
from pipeline.components.fairness import estimate_text
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import evaluations
from pipeline.metadata import store as lineage_store

GROUPS = ("tags: Older American", "tags: Servicemember")


def first_run(project: Path, seed: int, output_dir: str) -> dict:
    """Run the default pipeline with `seed`; its test estimates overall and for GROUPS."""
    command = [sys.executable, "runners/beam_runner.py", "--output-dir", output_dir]
    environment = {**os.environ, "PYTHONPATH": str(project)}
    done = subprocess.run(
        [*command, "--seed", str(seed)],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"seed {seed} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    config = PipelineConfig(output_dir=output_dir)
    store = lineage_store.connect(config.metadata_connection_config())
    model = store.get_artifacts_by_type("Model")[-1]  # pushed or not
    evaluation = queries.trace(store, str(model.id))["evaluation"]
    estimates = evaluations.slice_estimates(evaluation["uri"])
    return {
        "threshold": evaluation["decision_threshold"],
        **{name: estimates.get(name, {}) for name in (names.OVERALL, *GROUPS)},
    }


def cell(estimates: dict) -> str:
    """'0.6177 [0.5801, 0.6552] (n 969)'."""
    if "auc" not in estimates:
        return "-"
    return f"{estimate_text(estimates['auc'], digits=4)} (n {estimates.get('example_count')})"


def width(estimates: dict) -> float | None:
    auc = estimates.get("auc")
    return auc[2] - auc[1] if auc and auc[1] == auc[1] else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--project", type=Path, default=PROJECT_ROOT, help="checkout to run")
    args = parser.parse_args()
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=args.project, capture_output=True, text=True
    ).stdout.strip()
    results = {}
    for seed in args.seeds:
        results[seed] = first_run(
            args.project.resolve(), seed, tempfile.mkdtemp(prefix="cfpb-seed-")
        )
        print(f"seed {seed}: {results[seed]}", file=sys.stderr)
    slices = (names.OVERALL, *GROUPS)
    rows = [
        [seed, *(cell(r[name]) for name in slices), f"{r['threshold']:.4f}"]
        for seed, r in results.items()
    ]
    aucs = [r[names.OVERALL]["auc"][0] for r in results.values()]
    spread = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
    rows.append(["mean (sd) of AUC", f"{statistics.mean(aucs):.4f} ({spread:.4f})", "", "", ""])
    widths = []
    for name in slices:
        found = [w for r in results.values() if (w := width(r[name])) is not None]
        widths.append(f"{statistics.mean(found):.4f}" if found else "-")
    rows.append(["mean interval width", *widths, ""])
    print(f"Machine: {machine()}; commit {revision}\n")
    header = ["seed", "test AUC, overall [95%]", *(f"{g} [95%]" for g in GROUPS), "threshold"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()

"""Eval AUC of the default run over several seeds: the noise a change must stay within.

    .venv/bin/python benchmarks/seed_auc.py [--seeds 0 1 2] [--project DIR]

Each seed is a first run in a fresh output folder (the Tuner searches again). `--project`
runs another checkout's runner (say, a worktree of the commit before a change) with this
interpreter, so before and after are measured in one session.
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
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.metadata import store as lineage_store


def first_run(project: Path, seed: int, output_dir: str) -> dict:
    """Run the default pipeline with `seed`; the trained model's overall metrics."""
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
    return {"auc": evaluation["metrics"]["auc"], "threshold": evaluation["decision_threshold"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
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
    aucs = [r["auc"] for r in results.values()]
    rows = [[seed, f"{r['auc']:.4f}", f"{r['threshold']:.4f}"] for seed, r in results.items()]
    spread = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
    rows.append(["mean (sd)", f"{statistics.mean(aucs):.4f} ({spread:.4f})", ""])
    print(f"Machine: {machine()}; commit {revision}\n")
    print(markdown_table(["seed", "eval AUC", "decision threshold"], rows))


if __name__ == "__main__":
    main()

"""Where each component's time goes: a sampling profile (py-spy) of one default run.

    .venv/bin/python benchmarks/profile_components.py [--py-spy PATH] [runner flags...]
    .venv/bin/python benchmarks/profile_components.py --raw PROFILE   # summarize it again

py-spy is not in the lock (it is a tool, not a dependency): `pip install py-spy` anywhere and
pass its path. Beam runs in_memory, in the runner's process, so every executor's work is in
the samples. Each component's samples are split by the first phase marker found in the stack
(most specific first); the table gives seconds (samples / rate) and shares.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import RUNNER, machine, markdown_table

RATE = 50  # samples per second
# (component, the executor file that marks its samples)
EXECUTORS = {
    "ExampleGen": "pipeline/components/example_gen.py",
    "StatisticsGen": "tfx/components/statistics_gen/executor.py",
    "Transform": "tfx/components/transform/executor.py",
    "Tuner": "tfx/components/tuner/executor.py",
    "Trainer": "tfx/components/trainer/executor.py",
    "Evaluator": "tfx/components/evaluator/executor.py",
}
# (phase, a substring of a frame); the first that matches a stack names its phase.
PHASES = [
    ("TFDV statistics", "tensorflow_data_validation/"),
    ("saved model: load", "saved_model/load"),
    ("saved model: save", "saved_model/save"),
    ("graph tracing", "framework/func_graph.py"),
    ("TFT analyzers", "tensorflow_transform/beam/analyzer"),
    ("TFMA metrics", "tensorflow_model_analysis/metrics/"),
    ("TFMA model inference", "tensorflow_model_analysis/extractors/"),
    ("TFMA writers", "tensorflow_model_analysis/writers/"),
    ("Keras fit", "keras/src/engine/training.py"),
    ("tf.Example encoding", "example_coder"),
    ("tf.Example bytes and TFRecord framing", "pipeline/components/example_records.py"),
    ("CSV parsing", "pyarrow/"),
    ("TFRecord writing", "apache_beam/io/"),
    ("TFX packaging itself for Beam workers", "tfx/utils/dependency_utils.py"),
    ("Beam pickling (dill)", "apache_beam/internal/"),
    ("Beam graph and bundle overhead", "apache_beam/"),
]


def summarize(raw: Path) -> tuple[dict[str, Counter], Counter]:
    """Samples per component and phase, and all samples by top-level activity."""
    by_component: dict[str, Counter] = {name: Counter() for name in EXECUTORS}
    outside = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        component = next((n for n, f in EXECUTORS.items() if f in stack), None)
        phase = next((p for p, marker in PHASES if marker in stack), "other")
        if component:
            by_component[component][phase] += int(count)
        else:
            outside["imports" if "<module>" in stack else "orchestration and idle"] += int(count)
    return by_component, outside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--raw", type=Path, help="summarize this earlier profile instead")
    args, runner_flags = parser.parse_known_args()
    raw = args.raw
    if raw is None:
        output_dir = tempfile.mkdtemp(prefix="cfpb-profile-")
        raw = Path(output_dir) / "profile.txt"
        command = [sys.executable, str(RUNNER), "--output-dir", output_dir, *runner_flags]
        subprocess.run(
            [args.py_spy, "record", "--rate", str(RATE), "--format", "raw", "--output", str(raw),
             "--nonblocking", "--", *command],
            check=True, stdout=sys.stderr,
        )  # fmt: skip
        print(f"raw profile: {raw}", file=sys.stderr)
    by_component, outside = summarize(raw)
    print(f"Machine: {machine()}\n\nSampled at {RATE}/s; seconds of samples per phase:\n")
    rows = []
    for name, phases in by_component.items():
        total = sum(phases.values())
        if not total:
            continue
        top = ", ".join(
            f"{phase} {count / RATE:.1f} s ({count / total:.0%})"
            for phase, count in phases.most_common(5)
        )
        rows.append([name, f"{total / RATE:.1f}", top])
    rows.append(["outside executors", f"{sum(outside.values()) / RATE:.1f}", ", ".join(
        f"{k} {v / RATE:.1f} s" for k, v in outside.most_common())])  # fmt: skip
    print(markdown_table(["component", "seconds", "largest phases"], rows))


if __name__ == "__main__":
    main()

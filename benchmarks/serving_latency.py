"""Latency of the pushed model's serving_default on raw serialized tf.Examples, in-process.

.venv/bin/python benchmarks/serving_latency.py [--output-dir outputs] [--calls 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, markdown_table, pushed_model, serialized_examples

from pipeline.config import DEFAULT_OUTPUT_DIR

BATCH_SIZES = (1, 64)
WARMUP_CALLS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--calls", type=int, default=300, help="timed calls per batch size")
    args = parser.parse_args()
    import tensorflow as tf

    model_dir, examples_uri = pushed_model(args.output_dir)
    records = serialized_examples(examples_uri, "test")
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    rows = []
    for batch_size in BATCH_SIZES:
        batches = [
            tf.constant([records[(i * batch_size + j) % len(records)] for j in range(batch_size)])
            for i in range(args.calls)
        ]
        for batch in batches[:WARMUP_CALLS]:
            serve(examples=batch)
        milliseconds = []
        for batch in batches:
            started = time.perf_counter()
            serve(examples=batch)
            milliseconds.append((time.perf_counter() - started) * 1000)
        p50, p99 = np.percentile(milliseconds, [50, 99])
        rows.append(
            [
                batch_size,
                f"{p50:.2f}",
                f"{p99:.2f}",
                f"{batch_size / (np.mean(milliseconds) / 1000):,.0f}",
            ]
        )
    print(f"Machine: {machine()}")
    print(
        f"Model: {model_dir}; {args.calls} timed calls per batch size after {WARMUP_CALLS} "
        "warm-up calls, eval examples\n"
    )
    print(markdown_table(["batch size", "p50 (ms)", "p99 (ms)", "examples/s"], rows))


if __name__ == "__main__":
    main()

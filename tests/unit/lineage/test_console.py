"""The notebook's quiet console: noise gone, real warnings kept, Keras epochs not printed."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.config import PROJECT_ROOT

# Run in a fresh interpreter: quiet() changes process-wide logging.
SCRIPT = r"""
import logging, sys, warnings
import models
from lineage.notebook import console
console.quiet()
import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

tf.get_logger().info("INFO:tensorflow_decision_forests is not available.")
tf.get_logger().info("Assets written to: /tmp/x/assets")
tf.get_logger().warning("real tensorflow warning")
absl_logging.warning("`custom_executor_spec` is deprecated. Please customize component directly.")
absl_logging.warning("real absl warning")
beam = logging.getLogger("apache_beam.io.tfrecordio")
beam.warning("Couldn't find python-snappy so the implementation is not as fast")
beam.warning("real beam warning")
warnings.warn("real user warning")
warnings.warn("a library's deprecation", DeprecationWarning)

model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
model.compile(loss="mse")
model.fit(np.zeros((8, 2)), np.zeros(8), epochs=2, verbose=2)
with console.printed_to(sys.argv[1]) as path:
    print("Trial 1 Complete")
print("after the block")
"""


def test_quiet_drops_noise_keeps_warnings_and_sends_prints_to_a_file(tmp_path):
    log = tmp_path / "tuner.log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    for real in ("real tensorflow warning", "real absl warning", "real beam warning"):
        assert done.stderr.count(real) == 1, done.stderr  # once: TF's own handler is gone
        assert real not in done.stdout
    assert "real user warning" in done.stderr
    for noise in (
        "is not available",
        "Assets written",
        "custom_executor_spec",
        "python-snappy",
        "deprecation",
        "Epoch 1/2",
        "Trial 1 Complete",
    ):
        assert noise not in done.stdout + done.stderr, noise
    assert "cudart" not in done.stderr  # C++ INFO lines
    assert done.stdout == "after the block\n"
    assert log.read_text() == "Trial 1 Complete\n"

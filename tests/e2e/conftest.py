"""Model server fixtures: a real SavedModel from a real tf.Transform run, and server processes.

The model is trained for a few steps on the session's tf.Transform output (tests/conftest.py)
and saved with the pipeline's own serving signature, as Pusher would push it. Servers run as
`python -m serving` subprocesses on free loopback ports.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "cfpb"
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m serving` on free ports; stopped (SIGKILL as a last resort) by the fixture."""

    def __init__(self, base_path: Path, workdir: Path, *flags: str):
        self.base_path, self.workdir = base_path, workdir
        self.rest_port, self.grpc_port = free_port(), free_port()
        self.flags = list(flags)
        self.log_path = workdir / f"server-{self.rest_port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}/v1/models/{MODEL_NAME}"

    @property
    def request_log(self) -> Path:
        return self.workdir / "request_log" / "requests.sqlite"

    def start(self) -> ServerProcess:
        command = [
            sys.executable, "-m", "serving",
            f"--model_name={MODEL_NAME}",
            f"--model_base_path={self.base_path}",
            f"--rest_api_port={self.rest_port}",
            f"--port={self.grpc_port}",
            f"--request_log_dir={self.workdir / 'request_log'}",
            "--file_system_poll_wait_seconds=0.5",
            *self.flags,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.process = subprocess.Popen(
            command, cwd=self.workdir, env=env, stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready in {START_TIMEOUT_S}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def push(model_dir: Path, base_path: Path, version: int) -> Path:
    """Copy a SavedModel in as Pusher does: into .staging, then one rename."""
    staging = base_path / ".staging" / str(version)
    shutil.copytree(model_dir, staging)
    final = base_path / str(version)
    os.replace(staging, final)
    return final


@pytest.fixture(scope="session")
def saved_model(transformed, tmp_path_factory) -> Path:
    """A SavedModel with the pipeline's serving_default, trained a few steps."""
    import tensorflow as tf

    from models import features, model, trainer

    tf_transform_output, instances = transformed
    tf.keras.utils.set_random_seed(0)
    keras_model = model.build_model(
        model.hyperparameter_space(), model.vocabulary_sizes(tf_transform_output)
    )
    columns = {key: np.stack([i[key] for i in instances]) for key in instances[0]}
    labels = columns.pop(features.LABEL_KEY)
    data = tf.data.Dataset.from_tensor_slices((columns, labels)).batch(16).repeat()
    keras_model.fit(data, steps_per_epoch=5, epochs=1, verbose=0)
    export_dir = tmp_path_factory.mktemp("saved_model") / "model"
    signature = trainer.make_serving_signature(keras_model, tf_transform_output)
    keras_model.save(str(export_dir), save_format="tf", signatures={"serving_default": signature})
    return export_dir


@pytest.fixture(scope="session")
def serving_signature(saved_model):
    """The model's serving_default loaded in the test process, to compare answers with."""
    import tensorflow as tf

    return tf.saved_model.load(str(saved_model)).signatures["serving_default"]


@pytest.fixture(scope="session")
def shared_server(saved_model, tmp_path_factory):
    """One server (REST and gRPC) on version 1, for tests that change nothing on it."""
    workdir = tmp_path_factory.mktemp("shared_server")
    base_path = workdir / "serving_model"
    push(saved_model, base_path, 1)
    server = ServerProcess(base_path, workdir, "--max_request_bytes=2000000").start()
    yield server
    server.stop()

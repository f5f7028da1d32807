"""Model server processes for tests: start on free loopback ports, push versions, load, log."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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


def write_model_config(path: Path, base_path: Path, policy: str = "all {}", **labels: int) -> Path:
    """TF Serving's model config for model cfpb, with these version labels."""
    listed = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    path.write_text(
        f'model_config_list {{ config {{ name: "{MODEL_NAME}" base_path: "{base_path}" '
        f"model_version_policy {{ {policy} }} {listed} }} }}\n"
    )
    return path


class Load:
    """Bounded load: `clients` threads posting one body in a loop until stop() or `seconds`;
    with `body_for`, the body of each request is body_for(its request id)."""

    def __init__(
        self,
        url: str,
        body: dict | None = None,
        clients: int = 8,
        seconds: float = 10.0,
        body_for: Callable[[str], dict] | None = None,
    ):
        import threading

        self.url, self.body, self.seconds, self.body_for = url, body, seconds, body_for
        self.results: list[tuple[int | str, str, str]] = []  # (code or error, request id, version)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]

    def _client(self, index: int) -> None:
        session = requests.Session()
        deadline = time.monotonic() + self.seconds
        count = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            request_id = f"load-{index}-{count}"
            count += 1
            try:
                body = self.body_for(request_id) if self.body_for else self.body
                response = session.post(
                    self.url, json=body, headers={"X-Request-Id": request_id}, timeout=30
                )
                version = response.headers.get("X-Model-Version", "")
                self.results.append((response.status_code, request_id, version))
            except requests.RequestException as error:
                self.results.append((type(error).__name__, request_id, ""))
                time.sleep(0.05)

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        return self.join()

    def join(self) -> Load:
        for thread in self._threads:
            thread.join()
        return self

    def ok_ids(self) -> set[str]:
        return {request_id for code, request_id, _ in self.results if code == 200}


def logged(server: ServerProcess, column: str = "request_id") -> list:
    import sqlite3

    with sqlite3.connect(server.request_log) as connection:
        return [row[0] for row in connection.execute(f"SELECT {column} FROM predictions")]

"""The model server (python -m serving) under load: REST and gRPC, next to the in-process ceiling.

.venv/bin/python benchmarks/serving_server.py [--output-dir outputs] [--seconds 10]

Serves the latest pushed model of --output-dir on free loopback ports, one server per setting,
and loads it with single-example requests built from the eval split. REST load comes from wrk
(C, `apt-get install wrk`) when it is installed, else from a Python client; gRPC load from a
Python grpc.aio client in its own process. Every load generator shares the machine's cores
with the server, as it would on one host.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import load
import numpy as np
import psutil
from common import PROJECT_ROOT, machine, markdown_table, pushed_model, serialized_examples

from pipeline.config import DEFAULT_OUTPUT_DIR

CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, base_path: str, workdir: str, *flags: str):
        self.rest, self.grpc = free_port(), free_port()
        command = [
            sys.executable, "-m", "serving", "--model_name=cfpb",
            f"--model_base_path={base_path}", f"--rest_api_port={self.rest}",
            f"--port={self.grpc}", f"--request_log_dir={workdir}/log-{self.rest}", *flags,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.url = f"http://127.0.0.1:{self.rest}/v1/models/cfpb"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}")
            try:
                import urllib.request

                with urllib.request.urlopen(self.url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        atexit.register(self.stop)  # a failed run leaves no server behind
        self.peak_rss = self.rss()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_rss = max(self.peak_rss, self.rss())

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def in_process(model_dir: str, records: list[bytes], batch_size: int, seconds: float) -> dict:
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    batches = [
        tf.constant([records[(i * batch_size + j) % len(records)] for j in range(batch_size)])
        for i in range(200)
    ]
    for batch in batches[:20]:
        serve(examples=batch)
    latencies = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        serve(examples=batches[i % len(batches)])
        latencies.append((time.perf_counter() - started) * 1000)
        i += 1
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"p50": p50, "p99": p99, "rps": len(latencies) / seconds, "errors": 0}


def row(what: str, result: dict, per_request: int = 1, ceiling: float | None = None) -> list:
    share = f"{result['rps'] / ceiling:.0%}" if ceiling else ""
    return [
        what,
        f"{result['p50']:.2f}",
        f"{result['p99']:.2f}",
        f"{result['rps']:,.0f}",
        f"{result['rps'] * per_request:,.0f}",
        share,
        result["errors"],
    ]


def prepare(records: list[bytes], workdir: Path) -> dict[str, str]:
    """Request files: REST bodies (plain feature objects, one and 64 per request), gRPC records."""
    from models import features
    from serving import example_wire

    examples = []
    for record in records:
        decoded = example_wire.decode(record)
        decoded.pop(features.LABEL_KEY, None)  # requests carry no label
        examples.append(decoded)
    objects = [
        {name: values[0].decode() for name, (_, values) in example.items() if values}
        for example in examples
    ]
    files = {
        "one": [json.dumps({"instances": [o]}) for o in objects],
        "batch64": [
            json.dumps({"instances": objects[i : i + 64]}) for i in range(0, len(objects) - 63, 64)
        ],
        "grpc": [
            base64.b64encode(request).decode()
            for request in load.predict_requests([example_wire.encode(e) for e in examples])
        ],
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = str(workdir / f"{name}.txt")
        Path(paths[name]).write_text("\n".join(lines) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument("--grpc-client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.grpc_client:
        print(json.dumps(load.grpc_client(*args.grpc_client)))
        return

    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    model_dir, examples_uri = pushed_model(args.output_dir)
    records = serialized_examples(examples_uri, "test")
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    files = prepare(records, workdir)
    base_path = workdir / "serving_model"
    shutil.copytree(model_dir, base_path / "1")
    seconds = args.seconds

    one = in_process(model_dir, records, 1, seconds)
    ceiling = one["rps"]
    rows = [
        row("in-process serving_default, batch 1", one, 1, ceiling),
        row(
            "in-process serving_default, batch 64", in_process(model_dir, records, 64, seconds), 64
        ),
    ]
    memory = []

    name = "default (batching, request log)"
    server = Server(str(base_path), str(workdir))
    idle = server.rss()
    for connections in CONCURRENCY:
        result = load.rest_load(f"{server.url}:predict", files["one"], connections, seconds)
        rows.append(row(f"REST, concurrency {connections}", result, 1, ceiling))
    for connections in CONCURRENCY:
        result = load.grpc_load(server.grpc, files["grpc"], connections, seconds)
        rows.append(row(f"gRPC, concurrency {connections}", result, 1, ceiling))
    result = load.rest_load(f"{server.url}:predict", files["batch64"], 1, seconds)
    rows.append(row("REST, batch 64, concurrency 1", result, 64))
    server.stop()
    memory.append([name, f"{idle:.0f}", f"{server.peak_rss:.0f}"])

    for name, flags in {
        "request log off": ["--enable_request_log=false"],
        "request log synchronous=FULL (fsync per group commit)": ["--request_log_sync=full"],
        "dynamic batching off": ["--enable_batching=false"],
    }.items():
        server = Server(str(base_path), str(workdir), *flags)
        idle = server.rss()
        for connections in (8, 32) if "batching" in name else (8,):
            result = load.rest_load(f"{server.url}:predict", files["one"], connections, seconds)
            rows.append(row(f"REST, concurrency {connections}, {name}", result, 1, ceiling))
        server.stop()
        memory.append([name, f"{idle:.0f}", f"{server.peak_rss:.0f}"])
    shutil.rmtree(workdir, ignore_errors=True)

    rest_client = "wrk 4 (1 thread)" if shutil.which("wrk") else "Python http.client threads"
    print(f"Machine: {machine()}")
    print(
        f"Model: {model_dir}; single-example requests (plain feature objects over REST, "
        f"serialized tf.Examples over gRPC) cycling through {len(records)} eval examples; "
        f"{seconds:.0f} s per row; REST load: {rest_client}; gRPC load: Python grpc.aio client "
        "in its own process"
    )
    print(
        f"Load average (1 min) before the run: {load_before:.2f}, after: "
        f"{os.getloadavg()[0]:.2f} (the server and the load generators count for about 2)\n"
    )
    header = ["setting", "p50 (ms)", "p99 (ms)", "requests/s", "examples/s",
              "of in-process batch 1", "errors"]  # fmt: skip
    print(markdown_table(header, rows))
    print()
    print(markdown_table(["server", "memory after load (MiB)", "peak under load (MiB)"], memory))


if __name__ == "__main__":
    main()

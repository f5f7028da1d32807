"""The model server (python -m serving) under load: REST and gRPC, next to the in-process ceiling.

.venv/bin/python benchmarks/serving_server.py [--output-dir outputs] [--seconds 10]
    [--only grpc|rollout] [--rounds 3] [--server-project DIR] [--before-project DIR]

Serves the latest pushed model of --output-dir on free loopback ports, one server per setting,
and loads it with single-example requests built from the eval split. REST load comes from wrk
(C, `apt-get install wrk`) when it is installed, else from a Python client; gRPC load from
h2load (C, `apt-get install nghttp2-client`) when it is installed, else from a Python grpc.aio
client in its own process. h2load sends one request over and over, so it also loads REST with
that same example over HTTP/1.1: the like-for-like pair. Every load generator shares the
machine's cores with the server, as it would on one host. The REST and gRPC rows of the
default server alternate `--rounds` times (medians), so a busy minute on a shared machine
hits both. `--only grpc` runs just those; `--server-project` serves from another checkout
(a `git worktree` of the commit before a change) with the same load generators.

The rollout rows (issue 26) serve the model as three versions labelled stable, canary and
candidate, and compare REST concurrency 8 without a rollout, with a split (stable 90 / canary
10, by complaint id) and with the split plus a shadow scoring a copy of every request
(fraction 1.0), each as a closed loop (every core busy: the copies' CPU is the primary's wait)
and paced by a think time between requests (a load the server carries, with idle CPU for the
copies; wrk only). `--only rollout` runs just those, alternating the three servers `--rounds`
times (the machine is shared: a slow minute then hits every setting) and reporting medians.
`--before-project DIR` adds the split + shadow row served from another checkout to each round,
so a change to the shadow's path is measured before and after in the same minutes.
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

THINK_MS = 8  # the paced rollout rows: 8 clients, each waiting this long between requests
SPLIT = {"model": "cfpb", "split": {"stable": 90, "canary": 10}}
ROLLOUTS = {
    "no rollout": None,
    "split stable 90 / canary 10": SPLIT,
    "split + shadow (fraction 1.0)": {**SPLIT, "shadow": {"label": "candidate", "fraction": 1.0}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    project = PROJECT_ROOT  # the checkout whose serving package runs (--server-project)

    def __init__(self, base_path: str, workdir: str, *flags: str):
        self.rest, self.grpc = free_port(), free_port()
        command = [
            sys.executable, "-m", "serving", "--model_name=cfpb",
            f"--model_base_path={base_path}", f"--rest_api_port={self.rest}",
            f"--port={self.grpc}", f"--request_log_dir={workdir}/log-{self.rest}", *flags,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(self.project)}
        self.process = subprocess.Popen(  # cwd too: `-m serving` looks there first
            command, env=env, cwd=self.project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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

    def cpu_seconds(self) -> float:
        """CPU time of the server process, all threads: a cost the machine's load barely moves."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

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
    rounds = " / ".join(f"{r:,.0f}" for r in result.get("rounds", []))
    cpu = f"{result['cpu_ms']:.2f}" if "cpu_ms" in result else ""
    return [
        what,
        f"{result['p50']:.2f}",
        f"{result['p99']:.2f}",
        f"{result['rps']:,.0f}",
        f"{result['rps'] * per_request:,.0f}",
        share,
        cpu,
        rounds,
        result.get("generator", ""),
        result["errors"],
    ]


HEADER = ["setting", "p50 (ms)", "p99 (ms)", "requests/s", "examples/s", "of in-process batch 1",
          "server CPU ms/request", "requests/s of each round", "load generator",
          "errors"]  # fmt: skip


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


def rollout_rows(
    model_dir: str,
    workdir: Path,
    bodies: str,
    seconds: float,
    rounds: int,
    before: Path | None = None,
):
    """REST concurrency 8 with no rollout, a split, and a split with a shadow: table rows, once
    as a closed loop (every core busy) and once paced by a think time (wrk only); with `before`,
    also the split with a shadow as that checkout serves it."""
    base_path = workdir / "rollout_model"
    labels = {"stable": 1, "canary": 2, "candidate": 3}
    for version in labels.values():
        shutil.copytree(model_dir, base_path / str(version))
    config = workdir / "models.config"
    listed = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    config.write_text(
        f'model_config_list {{ config {{ name: "cfpb" base_path: "{base_path}" '
        f"model_version_policy {{ all {{}} }} {listed} }} }}\n"
    )
    loads = {"closed loop": 0, f"{THINK_MS} ms think time": THINK_MS if shutil.which("wrk") else 0}
    loads = {name: think for name, think in loads.items() if think or name == "closed loop"}
    current = Server.project
    settings = [(name, rollout, current) for name, rollout in ROLLOUTS.items()]
    if before is not None:
        shadowed = list(ROLLOUTS)[-1]
        settings.append((f"{shadowed}, before ({before.name})", ROLLOUTS[shadowed], before))
    results = {(load_name, name): [] for load_name in loads for name, _, _ in settings}
    for _ in range(rounds):
        for index, (name, rollout, project) in enumerate(settings):
            flags = [f"--model_config_file={config}"]
            if rollout is not None:
                path = workdir / f"rollout-{index}.json"
                path.write_text(json.dumps(rollout))
                flags.append(f"--rollout_file={path}")
            Server.project = project
            server = Server(str(base_path), str(workdir), *flags)
            for load_name, think in loads.items():
                cpu = server.cpu_seconds()
                url = f"{server.url}:predict"
                if think:
                    result = load.wrk(url, bodies, 8, seconds, think_ms=think)
                else:
                    result = load.rest_load(url, bodies, 8, seconds)
                result["cpu_ms"] = (
                    (server.cpu_seconds() - cpu) * 1000 / max(result["rps"] * seconds, 1)
                )
                results[(load_name, name)].append(result)
            server.stop()
    Server.project = current
    rows = []
    for (load_name, name), runs in results.items():
        median = {
            k: float(np.median([r[k] for r in runs])) for k in ("p50", "p99", "rps", "cpu_ms")
        }
        plain = float(np.median([r["p50"] for r in results[(load_name, "no rollout")]]))
        split = float(np.median([r["p50"] for r in results[(load_name, list(ROLLOUTS)[1])]]))
        change = "" if name == "no rollout" else f"{median['p50'] / plain - 1:+.0%}"
        if "shadow" in name:
            change += f" ({median['p50'] / split - 1:+.0%} vs the split)"
        rows.append(
            [f"REST, 8 clients, {load_name}, {name}", f"{median['p50']:.2f}",
             f"{median['p99']:.2f}", f"{median['rps']:,.0f}", f"{median['cpu_ms']:.2f}", change,
             " / ".join(f"{r['p50']:.2f}" for r in runs),
             sum(r["errors"] for r in runs)]
        )  # fmt: skip
    return rows


ROLLOUT_HEADER = ["setting", "p50 (ms)", "p99 (ms)", "requests/s", "server CPU ms/request",
                  "p50 vs no rollout",
                  "p50 of each round (ms)", "errors"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument("--only", choices=("all", "grpc", "rollout"), default="all")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the alternated rows")
    parser.add_argument("--server-project", help="serve from this checkout (default: this one)")
    parser.add_argument(
        "--before-project",
        help="with --only rollout: also serve split + shadow from this checkout, interleaved",
    )
    parser.add_argument("--grpc-client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.grpc_client:
        print(json.dumps(load.grpc_client(*args.grpc_client)))
        return
    if args.server_project:
        Server.project = Path(args.server_project).resolve()

    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    model_dir, examples_uri = pushed_model(args.output_dir)
    records = serialized_examples(examples_uri, "test")
    workdir = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    files = prepare(records, workdir)
    base_path = workdir / "serving_model"
    shutil.copytree(model_dir, base_path / "1")
    seconds, rows, memory, rollout = args.seconds, [], [], []

    ceiling = None
    if args.only == "all":
        one = in_process(model_dir, records, 1, seconds)
        ceiling = one["rps"]
        batch64 = in_process(model_dir, records, 64, seconds)
        rows += [
            row("in-process serving_default, batch 1", one, 1, ceiling),
            row("in-process serving_default, batch 64", batch64, 64),
        ]
    if args.only in ("all", "grpc"):
        server = Server(str(base_path), str(workdir))
        idle = server.rss()
        results = load.interleaved(load.protocol_runs(server, files, seconds), args.rounds)
        rows += [row(name, result, 1, ceiling) for name, result in results.items()]
        if args.only == "all":
            result = load.rest_load(f"{server.url}:predict", files["batch64"], 1, seconds)
            rows.append(row("REST, batch 64, concurrency 1", result, 64))
        server.stop()
        memory.append(["default (batching, request log)", f"{idle:.0f}", f"{server.peak_rss:.0f}"])
    if args.only == "all":
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
    if args.only in ("all", "rollout"):
        before = Path(args.before_project).resolve() if args.before_project else None
        rollout = rollout_rows(model_dir, workdir, files["one"], seconds, args.rounds, before)
    shutil.rmtree(workdir, ignore_errors=True)

    rest_client = "wrk 4 (1 thread)" if shutil.which("wrk") else "Python http.client threads"
    grpc_client = (
        "h2load (1 thread, one HTTP/2 connection, one request sent over and over)"
        if shutil.which("h2load")
        else "Python grpc.aio client in its own process"
    )
    print(f"Machine: {machine()}")
    print(
        f"Model: {model_dir}; served from {Server.project}; single-example requests (plain "
        f"feature objects over REST, serialized tf.Examples over gRPC) cycling through "
        f"{len(records)} eval examples; {seconds:.0f} s per run; {args.rounds} round(s) "
        f"alternating the runs of one server, medians; REST load: {rest_client}; "
        f"gRPC load: {grpc_client}"
    )
    print(
        f"Load average (1 min) before the run: {load_before:.2f}, after: "
        f"{os.getloadavg()[0]:.2f} (the server and the load generators count for about 2)\n"
    )
    if rows:
        print(markdown_table(HEADER, rows))
        print()
    if memory:
        print(
            markdown_table(["server", "memory after load (MiB)", "peak under load (MiB)"], memory)
        )
        print()
    if rollout:
        print("Rollout (issue 26): versions 1 (stable), 2 (canary), 3 (candidate) of the model;")
        print("REST requests include complaint_id, so the split assigns by it.\n")
        print(markdown_table(ROLLOUT_HEADER, rollout))


if __name__ == "__main__":
    main()

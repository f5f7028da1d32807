"""Load generators for the model server benchmarks: REST (wrk when installed, else Python
threads) and gRPC (h2load when installed, else grpc.aio in its own process, so it does not
share the caller's GIL). h2load (Debian's nghttp2-client) is C like wrk, so REST and gRPC are
then loaded alike; it also drives REST over HTTP/1.1 (h2load_rest) with the same body.
Every result is {"p50", "p99" (milliseconds), "rps", "errors", "generator"}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Its --grpc-client runs grpc_client() in a process of its own.
SERVING_BENCHMARK = Path(__file__).with_name("serving_server.py")
CONCURRENCY = (1, 8, 32)  # the REST and gRPC rows of protocol_runs

WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""
# A client's think time between an answer and its next request (ms): a paced load the server
# can carry, where a closed loop without it keeps every core busy.
WRK_THINK = "delay = function() return %d end\n"


def wrk(url: str, bodies_file: str, connections: int, seconds: float, think_ms: int = 0) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % bodies_file + (WRK_THINK % think_ms if think_ms else ""))
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds)}s", "--latency", "-s", script.name,
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)

    def milliseconds(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "p50": milliseconds("50%"),
        "p99": milliseconds("99%"),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "generator": "wrk",
    }


def python_http(url: str, bodies: list[str], connections: int, seconds: float) -> dict:
    """Fallback load without wrk: keep-alive http.client connections on threads."""
    import http.client

    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds
    host, port = "127.0.0.1", int(url.split(":")[2].split("/")[0])
    path = "/" + url.split("/", 3)[3]

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection(host, port)
        i = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection.request("POST", path, bodies[i % len(bodies)], {"Content-Type": "json"})
            response = connection.getresponse()
            response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            errors[0] += response.status != 200
            i += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p50, p99 = np.percentile(latencies, [50, 99])
    return {
        "p50": p50,
        "p99": p99,
        "rps": len(latencies) / seconds,
        "errors": errors[0],
        "generator": "Python http.client",
    }


def rest_load(url: str, bodies_file: str, connections: int, seconds: float) -> dict:
    if shutil.which("wrk"):
        return wrk(url, bodies_file, connections, seconds)
    bodies = Path(bodies_file).read_text().splitlines()
    return python_http(url, bodies, connections, seconds)


def h2load(
    url: str, body: bytes, headers: dict[str, str], flags: list[str], seconds: float
) -> tuple[list[float], list[int], int]:
    """(latencies in ms, status codes, response data bytes) of an h2load run.

    h2load sends one body file with every request, and prints no percentiles: the per-request
    log (--log-file) has each request's status and microseconds."""
    with tempfile.TemporaryDirectory(prefix="h2load-") as folder:
        data, log = Path(folder, "body"), Path(folder, "requests.tsv")
        data.write_bytes(body)
        command = ["h2load", "-t1", f"-D{round(seconds)}", f"--log-file={log}", f"-d{data}"]
        command += [f"-H{name}: {value}" for name, value in headers.items()] + flags + [url]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    statuses = [int(row[1]) for row in rows]
    latencies = [int(row[2]) / 1000 for row in rows]
    found = re.search(r"\((\d+)\) data", output)  # "traffic: ... 1.2MB (1234567) data"
    received = int(found.group(1)) if found else 0
    return latencies, statuses, received


def _h2load_result(latencies: list[float], errors: int, seconds: float, generator: str) -> dict:
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (float("nan"),) * 2
    return {
        "p50": p50,
        "p99": p99,
        "rps": len(latencies) / seconds,
        "errors": errors,
        "generator": generator,
    }


def h2load_rest(url: str, body: str, connections: int, seconds: float) -> dict:
    """REST over HTTP/1.1 from h2load: one keep-alive connection per client, one body."""
    headers = {"content-type": "application/json"}
    flags = ["--h1", f"-c{connections}", "-m1"]
    latencies, statuses, _ = h2load(url, body.encode(), headers, flags, seconds)
    errors = sum(status != 200 for status in statuses)
    return _h2load_result(latencies, errors, seconds, "h2load --h1")


def grpc_frame(request: bytes) -> bytes:
    """A unary gRPC message on the wire: no compression flag, 4-byte big-endian length."""
    return b"\x00" + struct.pack(">I", len(request)) + request


def h2load_grpc(
    port: int, request: bytes, reply_bytes: int, concurrency: int, seconds: float
) -> dict:
    """Unary Predict calls from h2load on one HTTP/2 connection, `concurrency` streams at once,
    as a gRPC channel multiplexes them.

    A failed call still ends with HTTP 200 (its grpc-status is a trailer h2load does not read)
    but carries no message: every answer here is reply_bytes long (the framed PredictResponse
    of a probe call), so the calls that brought none are the errors."""
    url = f"http://127.0.0.1:{port}/tensorflow.serving.PredictionService/Predict"
    headers = {"content-type": "application/grpc", "te": "trailers"}
    flags = ["-c1", f"-m{concurrency}"]
    latencies, statuses, received = h2load(url, grpc_frame(request), headers, flags, seconds)
    answered = received // reply_bytes if reply_bytes else 0
    errors = len(latencies) - answered + sum(status != 200 for status in statuses)
    return _h2load_result(latencies, max(errors, 0), seconds, "h2load (HTTP/2, 1 connection)")


def grpc_reply_bytes(port: int, request: bytes) -> int:
    """The framed size of the answer to one Predict call (raises if the call fails)."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        return len(grpc_frame(predict(request, timeout=30)))


def predict_requests(records: list[bytes]) -> list[bytes]:
    """Serialized PredictRequests, one example each, made once: a Python client spends more
    CPU on protobuf than the server does on the request, and it shares the server's cores."""
    from tensorflow_serving.apis import predict_pb2

    requests = []
    for record in records:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cfpb"
        tensor = request.inputs["examples"]
        tensor.dtype = 7  # DT_STRING
        tensor.tensor_shape.dim.add(size=1)
        tensor.string_val.append(record)
        requests.append(request.SerializeToString())
    return requests


async def _grpc_load(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict:
    import grpc  # only grpc: the client process does not load TensorFlow

    latencies: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        deadline = time.monotonic() + seconds

        async def client(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    await predict(requests[i % len(requests)], timeout=30)
                    latencies.append((time.perf_counter() - started) * 1000)
                except grpc.RpcError:
                    errors += 1
                i += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))
    p50, p99 = np.percentile(latencies, [50, 99])
    return {
        "p50": p50,
        "p99": p99,
        "rps": len(latencies) / seconds,
        "errors": errors,
        "generator": "Python grpc.aio",
    }


def grpc_load(port: int, records_file: str, concurrency: int, seconds: float) -> dict:
    """Runs the gRPC client in its own process, so it does not share this one's GIL."""
    client = [sys.executable, str(SERVING_BENCHMARK), "--grpc-client", str(port), records_file]
    client += [str(concurrency), str(seconds)]
    output = subprocess.run(client, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def grpc_client(port: str, requests_file: str, concurrency: str, seconds: str) -> dict:
    """The body of grpc_load's client process."""
    requests = [base64.b64decode(line) for line in Path(requests_file).read_text().split()]
    return asyncio.run(_grpc_load(int(port), requests, int(concurrency), float(seconds)))


def protocol_runs(server, files: dict[str, str], seconds: float) -> dict:
    """The REST and gRPC load runs of a serving_server.Server (url, grpc port, cpu_seconds) by
    row name, each a call that returns a result with the server's CPU ms per request.

    With h2load, two more rows at concurrency 8 relate it to the other generators: REST from
    h2load on the one example it sends over gRPC, and gRPC from the Python client."""
    url = f"{server.url}:predict"
    h2load = shutil.which("h2load") is not None
    request = base64.b64decode(Path(files["grpc"]).read_text().split()[0])
    reply = grpc_reply_bytes(server.grpc, request) if h2load else 0
    grpc_run = (h2load_grpc, server.grpc, request, reply) if h2load else (grpc_load, server.grpc)
    if not h2load:
        grpc_run += (files["grpc"],)
    runs = {}
    for clients in CONCURRENCY:
        runs[f"REST, concurrency {clients}"] = (rest_load, url, files["one"], clients)
        runs[f"gRPC, concurrency {clients}"] = (*grpc_run, clients)
    if h2load:
        body = Path(files["one"]).read_text().splitlines()[0]
        runs["REST, concurrency 8, one example"] = (h2load_rest, url, body, 8)
        runs["gRPC, concurrency 8, Python client"] = (grpc_load, server.grpc, files["grpc"], 8)

    def measured(function, *arguments) -> dict:
        cpu = server.cpu_seconds()
        result = function(*arguments, seconds)
        result["cpu_ms"] = (server.cpu_seconds() - cpu) * 1000 / max(result["rps"] * seconds, 1)
        return result

    return {name: lambda spec=spec: measured(*spec) for name, spec in runs.items()}


def interleaved(runs: dict, rounds: int) -> dict[str, dict]:
    """Every run once per round, in turn; the median of each measure over the rounds."""
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    medians = {}
    for name, found in results.items():
        median = {
            k: float(np.median([r[k] for r in found])) for k in ("p50", "p99", "rps", "cpu_ms")
        }
        median.update(
            errors=sum(r["errors"] for r in found),
            generator=found[0]["generator"],
            rounds=[r["rps"] for r in found],
        )
        medians[name] = median
    return medians

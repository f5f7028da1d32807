"""Load generators for the model server benchmarks: REST (wrk when installed, else Python
threads) and gRPC (grpc.aio in its own process, so it does not share the caller's GIL).
Every result is {"p50", "p99" (milliseconds), "rps", "errors"}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Its --grpc-client runs grpc_client() in a process of its own.
SERVING_BENCHMARK = Path(__file__).with_name("serving_server.py")

WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%s") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])
end
"""


def wrk(url: str, bodies_file: str, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % bodies_file)
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
    return {"p50": p50, "p99": p99, "rps": len(latencies) / seconds, "errors": errors[0]}


def rest_load(url: str, bodies_file: str, connections: int, seconds: float) -> dict:
    if shutil.which("wrk"):
        return wrk(url, bodies_file, connections, seconds)
    bodies = Path(bodies_file).read_text().splitlines()
    return python_http(url, bodies, connections, seconds)


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
    return {"p50": p50, "p99": p99, "rps": len(latencies) / seconds, "errors": errors}


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

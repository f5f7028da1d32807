"""The Open Inference Protocol's REST API (KServe v2) beside TF Serving's, on the same port.

Endpoints (https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol):
  GET  /v2/health/live, /v2/health/ready             open, as /v1's model status is
  GET  /v2                                           server metadata
  GET  /v2/models/{name}[/versions/{v}]              model metadata
  GET  /v2/models/{name}[/versions/{v}]/ready        open
  POST /v2/models/{name}[/versions/{v}]/infer
{v} is a version number or one of the model's labels (stable, canary). Triton's binary tensor
extension is understood both ways (tritonclient's HTTP client uses it by default). Errors are
the protocol's body, {"error": "..."}, with the HTTP code of the TF Serving API's same error.
"""

from __future__ import annotations

import re
import time
import uuid

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving import oip_tensors
from serving.errors import ServingError, invalid, not_found
from serving.oip_tensors import InputTensor
from serving.rest import (
    _context,
    _settle,
    authorized,
    error_response,
    json_response,
    read_body,
    unauthorized,
)

PROTOCOL = "oip-rest"
MODEL_PATH = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<verb>/ready|/infer)?$"
)
HEADER_LENGTH = "inference-header-content-length"


def _flatten(data) -> list:
    """The protocol lets tensor data be nested row-major arrays; the shape is checked after."""
    if not isinstance(data, list):
        return [data]
    return [value for item in data for value in _flatten(item)]


def _json_values(name: str, data) -> list[bytes]:
    if not isinstance(data, list):
        raise invalid(f"input {name!r}: 'data' must be an array")
    values = _flatten(data)
    if not all(isinstance(value, str) for value in values):
        raise invalid(f"input {name!r}: BYTES data must be strings")
    return [value.encode() for value in values]


def read_inputs(body: dict, binary: bytes) -> list[InputTensor]:
    """The input tensors of an infer request, from JSON data or the binary extension's bytes."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise invalid("'inputs' must be a non-empty array of tensors")
    found, offset = [], 0
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise invalid(f"input {index} must be an object with name, shape, datatype, data")
        name, datatype = item.get("name"), item.get("datatype")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise invalid(f"input {index} must have a string 'name' and 'datatype'")
        parameters = item.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        values: list[bytes] = []
        if size is not None:
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise invalid(
                    f"input {name!r}: binary_data_size {size} does not fit the "
                    f"{len(binary) - offset} byte(s) of binary data left"
                )
            if "data" in item:
                raise invalid(f"input {name!r} has both 'data' and binary_data_size")
            if datatype == "BYTES":
                values = oip_tensors.decode_bytes(binary[offset : offset + size], name)
            offset += size
        elif datatype == "BYTES":
            values = _json_values(name, item.get("data"))
        oip_tensors.check_shape(name, datatype, item.get("shape"), len(values))
        found.append(InputTensor(name, datatype, item["shape"], values))
    if offset != len(binary):
        raise invalid(f"{len(binary) - offset} byte(s) of binary data belong to no input")
    return found


def _outputs(body: dict) -> tuple[list[str], dict[str, bool]]:
    """(names asked for, in order; which of them go back as binary data)."""
    parameters = body.get("parameters") or {}
    everything_binary = isinstance(parameters, dict) and parameters.get("binary_data_output")
    asked = body.get("outputs") or []
    if not isinstance(asked, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked
    ):
        raise invalid("'outputs' must be an array of objects with a string 'name'")
    binary = {}
    for output in asked:
        own = output.get("parameters") or {}
        binary[output["name"]] = bool(own.get("binary_data", everything_binary))
    return [o["name"] for o in asked], binary if asked else {"*": bool(everything_binary)}


def parse_body(raw: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """(the JSON object, the binary data after it) of an infer request's body."""
    split = len(raw)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(raw):
            raise invalid(
                f"Inference-Header-Content-Length {header_length!r} must be an integer "
                f"of at most the body's {len(raw)} bytes"
            )
        split = int(header_length)
    try:
        body = orjson.loads(raw[:split])
    except orjson.JSONDecodeError as error:
        raise invalid(f"JSON parse error: {error}") from None
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    return body, raw[split:]


def infer_response(body: dict, call, outputs: dict, wanted: list[str], binary: dict) -> Response:
    answer = {"model_name": call.model, "model_version": str(call.loaded.servable.version)}
    if isinstance(body.get("id"), str):
        answer["id"] = body["id"]
    tensors, chunks = [], []
    for name in wanted:
        values = np.asarray(outputs[name])
        tensor = {"name": name, "datatype": oip_tensors.datatype_of(values)}
        tensor["shape"] = list(values.shape)
        if binary.get(name, binary.get("*", False)):
            raw = oip_tensors.encode_tensor(values)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif values.dtype == object:
            tensor["data"] = [v.decode("utf-8", "replace") for v in values.ravel()]
        else:
            tensor["data"] = values.ravel()  # orjson writes float32 as /v1 does
        tensors.append(tensor)
    answer["outputs"] = tensors
    headers = {"X-Model-Version": answer["model_version"]}
    if call.batch.unknown:
        headers["X-Unknown-Features"] = ",".join(call.batch.unknown)
    if not chunks:
        return json_response(answer, 200, headers)
    header = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    headers["Inference-Header-Content-Length"] = str(len(header))
    return Response(header + b"".join(chunks), 200, headers, "application/octet-stream")


async def infer(request: Request, name: str, version_text: str | None) -> Response:
    context = _context(request)
    service = context.service
    started = time.perf_counter()
    request_id = oip_tensors.request_id(request.headers.get("x-request-id", ""))
    served_version, arm = "", ""
    try:
        raw = await read_body(request, context.max_body_bytes)
        body, binary_data = parse_body(raw, request.headers.get(HEADER_LENGTH))
        request_id = request_id or oip_tensors.request_id(body.get("id")) or uuid.uuid4().hex
        inputs = read_inputs(body, binary_data)
        names, binary = _outputs(body)
        parameters = body.get("parameters") or {}
        signature = parameters.get("signature_name") if isinstance(parameters, dict) else None
        if signature is not None and not isinstance(signature, str):
            raise invalid("parameter 'signature_name' must be a string")
        service.admit()
        try:
            call, wanted = oip_tensors.begin_infer(
                service, PROTOCOL, request_id, name, version_text, signature, inputs, names
            )
            served_version = str(call.loaded.servable.version)
            future = service.submit_logged(call)
            await _settle(future)
            served_version, arm = str(call.loaded.servable.version), call.arm or ""
            outputs = future.result()  # or its ServingError
        finally:
            service.release()
        response = infer_response(body, call, outputs, wanted, binary)
    except ServingError as error:
        response = error_response(error)
    response.headers["X-Request-Id"] = request_id or ""
    service.observe(PROTOCOL, "infer", response.status_code, name, served_version, started, arm)
    return response


async def models_endpoint(request: Request) -> Response:
    """/v2/models/{name}[/versions/{v}][/ready|/infer]."""
    service = _context(request).service
    started = time.perf_counter()
    match = MODEL_PATH.match(request.url.path)
    api, name = "unknown", ""
    try:
        if match is None:
            raise not_found(f"Malformed request: {request.method} {request.url.path}")
        name, verb = match["name"], match["verb"]
        api = {None: "metadata", "/ready": "ready", "/infer": "infer"}[verb]
        wanted = "POST" if api == "infer" else "GET"
        if request.method != wanted:
            raise ServingError(invalid("").code, f"{api} takes {wanted}", http_status=405)
        if api != "ready" and not authorized(request):
            response = unauthorized()
        elif api == "infer":
            return await infer(request, name, match["version"])
        else:
            model = service.manager.model(name)
            version, label = oip_tensors.version_or_label(match["version"])
            if api == "ready":
                ready = oip_tensors.model_ready(model, version, label)
                response = json_response({"name": name, "ready": ready}, 200 if ready else 400)
            else:
                loaded, _ = model.resolve(version, label)
                signature = loaded.servable.signature(None)
                response = json_response(oip_tensors.model_metadata(model, signature))
    except ServingError as error:
        response = error_response(error)
    service.observe(PROTOCOL, api, response.status_code, name, "", started)
    return response


async def live_endpoint(request: Request) -> Response:
    return json_response({"live": True})


async def ready_endpoint(request: Request) -> Response:
    # The protocol: 200 means ready, a 4xx means not (tritonclient reads only the code).
    ready = oip_tensors.server_ready(_context(request).service.manager)
    return json_response({"ready": ready}, 200 if ready else 400)


async def server_metadata_endpoint(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    return json_response(
        {
            "name": oip_tensors.SERVER_NAME,
            "version": oip_tensors.server_version(),
            "extensions": oip_tensors.EXTENSIONS,
        }
    )


ROUTES = [
    Route("/v2", server_metadata_endpoint, methods=["GET"]),
    Route("/v2/health/live", live_endpoint, methods=["GET"]),
    Route("/v2/health/ready", ready_endpoint, methods=["GET"]),
    Route("/v2/models/{path:path}", models_endpoint, methods=["GET", "POST", "PUT", "DELETE"]),
]

"""TF Serving's REST API (api_rest.md) on Starlette, plus /metrics and a config reload.

One catch-all route parses /v1/models/... with a regular expression, as TF Serving does: a
model path such as /v1/models/cfpb/versions/2:predict does not fit path-parameter routing.
Every error is TF Serving's body, {"error": "..."}, with its HTTP code; never a stack trace.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import orjson
from google.protobuf import json_format
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving import grpc_convert
from serving.errors import ServingError, invalid, not_found, too_large
from serving.service import PredictService, bearer_token_matches

log = logging.getLogger("serving")
MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<verb>/metadata|:predict|:classify|:regress)?$"
)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def json_response(content, status: int = 200, headers: dict | None = None) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status, headers, media_type="application/json")


def error_response(error: ServingError, headers: dict | None = None) -> Response:
    return json_response({"error": error.message}, error.http_status, headers)


def _plain(name: str, values: np.ndarray):
    if values.dtype == object:  # DT_STRING: text, or {"b64"} for names ending in _bytes
        if name.endswith("_bytes"):
            return [{"b64": base64.b64encode(v).decode()} for v in values.ravel()]
        return np.vectorize(lambda v: v.decode("utf-8", "replace"), otypes=[object])(
            values
        ).tolist()
    return values


def format_outputs(outputs: dict[str, np.ndarray], columnar: bool) -> dict:
    """TF Serving's shapes: a single output's name is dropped; rows or columns as asked."""
    plain = {name: _plain(name, values) for name, values in outputs.items()}
    if columnar:
        return {"outputs": next(iter(plain.values())) if len(plain) == 1 else plain}
    if len(plain) == 1:
        return {"predictions": next(iter(plain.values()))}
    size = len(next(iter(plain.values())))
    return {
        "predictions": [{name: values[i] for name, values in plain.items()} for i in range(size)]
    }


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(f"the request body has {length} bytes; this server takes {limit}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(f"the request body is over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        # The client's doing, not the server's: one line, and nobody left to answer.
        log.info(
            "client disconnected after %d of %s body bytes: %s %s",
            size,
            length or "?",
            request.method,
            request.url.path,
        )
        raise ServingError(grpc.StatusCode.CANCELLED, "the client disconnected") from None
    return b"".join(chunks)


async def _settle(future) -> None:
    try:
        await asyncio.wrap_future(future)
    except Exception:  # looked at by the caller through the future itself
        pass


@dataclass
class RestContext:
    """What the handlers share, kept on the app (app.state.rest)."""

    service: PredictService
    token: str | None
    max_body_bytes: int
    reload: Callable[[], None]


def _context(request: Request) -> RestContext:
    return request.app.state.rest


def authorized(request: Request) -> bool:
    token = _context(request).token
    if token is None:
        return True
    return bearer_token_matches(request.headers.get("authorization", ""), token)


def unauthorized() -> Response:
    return json_response(
        {"error": "missing or wrong bearer token (Authorization: Bearer ...)"},
        401,
        {"WWW-Authenticate": "Bearer"},
    )


async def predict(request: Request, name: str, version: int | None, label: str | None):
    context = _context(request)
    service = context.service
    started = time.perf_counter()
    request_id = request.headers.get("x-request-id", "")
    if not REQUEST_ID.match(request_id):
        request_id = uuid.uuid4().hex
    headers = {"X-Request-Id": request_id}
    served_version, arm = "", ""
    try:
        body = await read_body(request, context.max_body_bytes)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise invalid(f"JSON parse error: {error}") from None
        service.admit()
        try:
            signature = data.get("signature_name") if isinstance(data, dict) else None
            if signature is not None and not isinstance(signature, str):
                raise invalid("'signature_name' must be a string")
            call = service.begin(request_id, "rest", name, version, label, signature)
            served_version = str(call.loaded.servable.version)
            service.parse_json(call, data)
            future = service.submit_logged(call)
            await _settle(future)
            served_version = str(call.loaded.servable.version)  # a swap may have moved it
            arm = call.arm or ""
            outputs = future.result()  # or its ServingError
        finally:
            service.release()
        headers["X-Model-Version"] = served_version
        if call.batch.unknown:
            headers["X-Unknown-Features"] = ",".join(call.batch.unknown)
        response = json_response(format_outputs(outputs, call.batch.columnar), 200, headers)
    except ServingError as error:
        response = error_response(error, headers)
    service.observe("rest", "predict", response.status_code, name, served_version, started, arm)
    return response


def status(manager, name: str, version: int | None, label: str | None) -> Response:
    return json_response(
        json_format.MessageToDict(
            grpc_convert.status_response(manager.model(name), version, label),
            preserving_proto_field_name=True,
            including_default_value_fields=True,
        )
    )


def metadata(manager, name: str, version: int | None, label: str | None) -> Response:
    loaded, _ = manager.model(name).resolve(version, label)
    return json_response(grpc_convert.metadata_json(loaded.servable))


async def models_endpoint(request: Request) -> Response:
    """Every /v1/models/... path: status, metadata, predict (classify and regress refused)."""
    service = _context(request).service
    started = time.perf_counter()
    match = MODEL_PATH.match(request.url.path)
    api = "unknown"
    try:
        if match is None:
            raise not_found(f"Malformed request: {request.method} {request.url.path}")
        name, label, verb = match["name"], match["label"], match["verb"]
        version = None
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid(f"the version must be an integer, got {match['version']!r}")
            version = int(match["version"])
        api = "status" if verb is None else "metadata" if verb == "/metadata" else verb[1:]
        wanted = "GET" if api in ("status", "metadata") else "POST"
        if request.method != wanted:
            raise ServingError(invalid("").code, f"{api} takes {wanted}", http_status=405)
        if api != "status" and not authorized(request):
            response = unauthorized()
        elif api == "predict":
            return await predict(request, name, version, label)
        elif api == "status":
            response = status(service.manager, name, version, label)
        elif api == "metadata":
            response = metadata(service.manager, name, version, label)
        else:
            raise ServingError(
                grpc_convert.UNIMPLEMENTED,
                f"{api}: the model has no {api} signature; use :predict",
            )
    except ServingError as error:
        response = error_response(error)
    service.observe("rest", api, response.status_code, match["name"] if match else "", "", started)
    return response


async def metrics_endpoint(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    metrics = _context(request).service.metrics
    return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")


async def reload_endpoint(request: Request) -> Response:
    if not authorized(request):
        return unauthorized()
    try:
        await asyncio.get_running_loop().run_in_executor(None, _context(request).reload)
    except ServingError as error:  # a config file that does not parse, say: one line
        log.warning("reload refused: %s", error.message)
        return error_response(error)
    except Exception as error:  # a bug: the traceback is worth having
        log.exception("reload failed")
        return json_response({"error": f"reload failed: {str(error).splitlines()[0]}"}, 500)
    return json_response({"status": "reloaded"})


async def not_found_endpoint(request: Request) -> Response:
    return json_response({"error": f"Malformed request: {request.url.path}"}, 404)


async def internal_error(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=error)
    return json_response({"error": "internal error; the server log has the details"}, 500)


ROUTES = [
    Route("/v1/models/{path:path}", models_endpoint, methods=["GET", "POST", "PUT", "DELETE"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
    Route("/v1/admin/reload", reload_endpoint, methods=["POST"]),
    Route("/{path:path}", not_found_endpoint, methods=["GET", "POST", "PUT", "DELETE"]),
]

"""TF Serving's gRPC API: PredictionService and ModelService, from tensorflow-serving-api's protos.

A client built on tensorflow_serving.apis works unchanged. Request id, served version and
unknown features go back as trailing metadata (x-request-id, x-model-version,
x-unknown-features). The server that runs these handlers is serving/grpc_aio.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    status_pb2,
)

from serving import grpc_convert
from serving.errors import ServingError, invalid
from serving.routing import Router
from serving.service import Call, PredictService, bearer_token_matches
from serving.versions import settings_from_proto

log = logging.getLogger("serving")
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def _metadata(context) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata()}


class _Auth:
    REFUSED = "missing or wrong bearer token"

    def __init__(self, token: str | None):
        self._token = token or None

    def allows(self, metadata: dict[str, str]) -> bool:
        if self._token is None:
            return True
        return bearer_token_matches(metadata.get("authorization", ""), self._token)

    def check(self, context, metadata: dict[str, str] | None = None) -> None:
        if self._token is None:
            return
        if not self.allows(_metadata(context) if metadata is None else metadata):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, self.REFUSED)


def _examples(request_input) -> list[bytes]:
    """Serialized examples of a Classify/Regress Input, context features merged in."""
    which = request_input.WhichOneof("kind")
    if which == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if which == "example_list_with_context":
        merged = []
        listed = request_input.example_list_with_context
        for example in listed.examples:
            combined = example_pb2.Example()
            combined.CopyFrom(listed.context)
            combined.MergeFrom(example)
            merged.append(combined.SerializeToString())
        return merged
    raise invalid("the request's input has no examples")


def _batch(name: str, tensor) -> list[bytes]:
    """The serialized examples of a Predict input, which must be a 1-D batch of them.

    TensorFlow (so TF Serving) reads a TensorProto with fewer values than its shape by repeating
    the last one, with more by dropping the rest, and one without tensor_shape as a scalar: each
    would answer for examples the client did not send, so each is refused here.
    """
    if tensor.dtype != types_pb2.DT_STRING:
        raise invalid(f"input '{name}' must be DT_STRING serialized tf.Examples")
    values = list(tensor.string_val)
    expected = (
        "expected a 1-D batch whose dimension equals the number of serialized examples "
        f"([{len(values)}])"
    )
    if not tensor.HasField("tensor_shape"):
        raise invalid(
            f"input '{name}' has no tensor_shape, which TensorFlow reads as a scalar; {expected}"
        )
    shape = tensor.tensor_shape
    dims = [dim.size for dim in shape.dim]
    if shape.unknown_rank or dims != [len(values)]:
        given = "of unknown rank" if shape.unknown_rank else f"[{', '.join(map(str, dims))}]"
        raise invalid(
            f"input '{name}' has shape {given} but {len(values)} serialized example(s); {expected}"
        )
    return values


@dataclass
class _Request:
    """One Predict, Classify or Regress call as its handler carries it through the service."""

    started: float
    api: str
    spec: Any  # the request's ModelSpec
    request_id: str = ""
    call: Call | None = None
    version_label: str = ""  # for the metrics: the version that answered, once known
    arm: str = ""


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """The handlers for grpc's thread-pool server: each request waits in its own thread."""

    def __init__(self, service: PredictService, token: str | None):
        self.service, self._auth = service, _Auth(token)

    def _begin(self, context, api: str, spec) -> tuple[_Request, bool]:
        """The request, and whether its token lets it in (the caller aborts if not)."""
        request = _Request(time.perf_counter(), api, spec)
        metadata = _metadata(context)  # read once: auth and request id
        request.request_id = metadata.get("x-request-id") or uuid.uuid4().hex
        return request, self._auth.allows(metadata)

    def _queue(self, request: _Request, fill: Callable) -> Future:
        """Resolve, check and queue an admitted request (raises ServingError)."""
        spec = request.spec
        version = spec.version.value if spec.HasField("version") else None
        call = request.call = self.service.begin(
            request.request_id,
            "grpc",
            spec.name,
            version,
            spec.version_label or None,
            spec.signature_name or None,
        )
        request.version_label = str(call.loaded.servable.version)
        fill(call)
        return self.service.submit_logged(call)

    @staticmethod
    def _settled(request: _Request) -> None:
        """The version that answered (or failed) and the arm, for the metrics."""
        call = request.call
        request.version_label, request.arm = str(call.loaded.servable.version), call.arm or ""

    def _observe(self, request: _Request, code: str) -> None:
        self.service.observe(
            "grpc",
            request.api,
            code,
            request.spec.name,
            request.version_label,
            request.started,
            request.arm,
        )

    def _answered(self, request: _Request, context) -> None:
        call = request.call
        trailing = [
            ("x-request-id", request.request_id),
            ("x-model-version", request.version_label),
        ]
        if call.batch.unknown:
            trailing.append(("x-unknown-features", ",".join(call.batch.unknown)))
        context.set_trailing_metadata(trailing)
        self._observe(request, "OK")

    @contextmanager
    def _serving(self, request: _Request, fill: Callable) -> Iterator[Future]:
        """Admit, resolve, check and queue a request, yielding its future to wait on; then note
        the version that answered and free the slot. A ServingError is observed and re-raised
        for the caller to abort with (grpc_aio's handlers share this, awaiting the future)."""
        service = self.service
        try:
            service.admit()
            try:
                future = self._queue(request, fill)
                try:
                    yield future
                finally:
                    self._settled(request)
            finally:
                service.release()
        except ServingError as error:
            self._observe(request, error.code.name)
            raise

    def _run(self, context, api: str, spec, fill: Callable) -> tuple:
        """Admit, resolve, check and run one request; (call, outputs) or an aborted context."""
        request, allowed = self._begin(context, api, spec)
        if not allowed:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, _Auth.REFUSED)
        try:
            with self._serving(request, fill) as future:
                outputs = future.result()  # waits; raises the request's ServingError
        except ServingError as error:
            context.abort(error.code, error.message)
        self._answered(request, context)
        return request.call, outputs

    @staticmethod
    def _spec(response_spec, call) -> None:
        response_spec.name = call.model
        response_spec.version.value = call.loaded.servable.version
        response_spec.signature_name = call.signature.name

    def _predict_fill(self, request) -> Callable:
        def fill(call) -> None:
            name = call.signature.input_name
            if set(request.inputs) != {name}:
                raise invalid(
                    f"the request must have exactly one input, '{name}'; "
                    f"got {sorted(request.inputs)}"
                )
            self.service.parse_serialized(call, _batch(name, request.inputs[name]))

        return fill

    def _predict_response(self, request, call, outputs) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        self._spec(response.model_spec, call)
        for name in list(request.output_filter) or list(outputs):
            if name not in outputs:
                raise invalid(f"output_filter: no output {name!r}")
            grpc_convert.fill_tensor_proto(response.outputs[name], outputs[name])
        return response

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        call, outputs = self._run(
            context, "predict", request.model_spec, self._predict_fill(request)
        )
        try:
            return self._predict_response(request, call, outputs)
        except ServingError as error:
            context.abort(error.code, error.message)

    def _example_fill(self, request, api: str, method: str) -> Callable:
        def fill(call) -> None:
            if call.signature.definition.method_name != method:
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{api.capitalize()}: signature '{call.signature.name}' of model "
                    f"{call.model} is a {call.signature.definition.method_name} signature, "
                    f"not {method}; use Predict",
                )
            self.service.parse_serialized(call, _examples(request.input))

        return fill

    def _classify_response(self, call, outputs) -> classification_pb2.ClassificationResponse:
        response = classification_pb2.ClassificationResponse()
        self._spec(response.model_spec, call)
        scores, classes = outputs.get("scores"), outputs.get("classes")
        for index in range(len(call.batch.serialized)):
            result = response.result.classifications.add()
            count = len(scores[index]) if scores is not None else len(classes[index])
            for k in range(count):
                item = result.classes.add()
                if classes is not None:
                    item.label = classes[index][k].decode("utf-8", "replace")
                if scores is not None:
                    item.score = float(scores[index][k])
        return response

    def _regress_response(self, call, outputs) -> regression_pb2.RegressionResponse:
        response = regression_pb2.RegressionResponse()
        self._spec(response.model_spec, call)
        for value in outputs["outputs"].reshape(len(call.batch.serialized), -1)[:, 0]:
            response.result.regressions.add(value=float(value))
        return response

    def Classify(self, request, context):  # noqa: N802
        fill = self._example_fill(request, "classify", CLASSIFY)
        return self._classify_response(*self._run(context, "classify", request.model_spec, fill))

    def Regress(self, request, context):  # noqa: N802
        fill = self._example_fill(request, "regress", REGRESS)
        return self._regress_response(*self._run(context, "regress", request.model_spec, fill))

    def GetModelMetadata(self, request, context):  # noqa: N802
        self._auth.check(context)
        fields = set(request.metadata_field)
        if fields != {"signature_def"}:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"metadata_field must be ['signature_def'], got {sorted(fields)}",
            )
        spec = request.model_spec
        try:
            version = spec.version.value if spec.HasField("version") else None
            loaded, _ = self.service.manager.model(spec.name).resolve(
                version, spec.version_label or None
            )
        except ServingError as error:
            context.abort(error.code, error.message)
        return grpc_convert.metadata_response(loaded.servable)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, router: Router, token: str | None):
        self.manager, self.router, self._auth = router.manager, router, _Auth(token)

    def GetModelStatus(self, request, context):  # noqa: N802 (a health check: no token)
        spec = request.model_spec
        try:
            version = spec.version.value if spec.HasField("version") else None
            model = self.manager.model(spec.name)
            return grpc_convert.status_response(model, version, spec.version_label or None)
        except ServingError as error:
            context.abort(error.code, error.message)
        return get_model_status_pb2.GetModelStatusResponse()

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        self._auth.check(context)
        response = model_management_pb2.ReloadConfigResponse()
        try:
            # The config comes with the request; the rollout file is read again with it.
            self.router.reload(settings_from_proto(request.config, base_dir=""))
        except ServingError as error:  # the client hears why; the operator gets one line
            log.warning("reload refused: %s", error.message)
            response.status.CopyFrom(
                status_pb2.StatusProto(error_code=error.code.value[0], error_message=error.message)
            )
        return response

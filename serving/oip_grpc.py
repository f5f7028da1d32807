"""The Open Inference Protocol's gRPC API (inference.GRPCInferenceService), on TF Serving's port.

The protos are the ones tritonclient ships (tritonclient 2.41.1, tritonclient/grpc/service_pb2.py,
generated from Triton's grpc_service.proto, a superset of KServe's grpc_predict_v2.proto with the
same package, service and field numbers). ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata and ModelInfer are served; Triton's other methods answer UNIMPLEMENTED. Inputs come
as contents.bytes_contents or raw_input_contents (tritonclient's default); outputs go back as
raw_output_contents, as Triton answers. Errors carry the TF Serving API's status codes.
"""

from __future__ import annotations

import time
import uuid

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from serving import oip_tensors
from serving.errors import ServingError, invalid
from serving.oip_tensors import InputTensor
from serving.service import PredictService, bearer_token_matches

PROTOCOL = "oip-grpc"


def _metadata(context) -> dict[str, str]:
    return {key: value for key, value in context.invocation_metadata()}


def read_inputs(request) -> list[InputTensor]:
    """The input tensors of a ModelInferRequest; raw contents, when given, are one per input."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs")
    found = []
    for index, tensor in enumerate(request.inputs):
        values: list[bytes] = []
        if tensor.datatype == "BYTES":
            if raw:
                values = oip_tensors.decode_bytes(raw[index], tensor.name)
            else:
                values = list(tensor.contents.bytes_contents)
        shape = list(tensor.shape)
        oip_tensors.check_shape(tensor.name, tensor.datatype, shape, len(values))
        found.append(InputTensor(tensor.name, tensor.datatype, shape, values))
    return found


def _tensor_metadata(entry: dict):
    return service_pb2.ModelMetadataResponse.TensorMetadata(**entry)


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: PredictService, token: str | None):
        self.service, self._token = service, token or None

    def _check(self, context) -> None:
        if self._token is None:
            return
        if not bearer_token_matches(_metadata(context).get("authorization", ""), self._token):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    def ServerLive(self, request, context):  # noqa: N802 (gRPC method names); a health check
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=oip_tensors.server_ready(self.service.manager))

    def ModelReady(self, request, context):  # noqa: N802 (a health check: no token)
        try:
            model = self.service.manager.model(request.name)
        except ServingError as error:
            context.abort(error.code, error.message)
        version, label = oip_tensors.version_or_label(request.version)
        return service_pb2.ModelReadyResponse(ready=oip_tensors.model_ready(model, version, label))

    def ServerMetadata(self, request, context):  # noqa: N802
        self._check(context)
        return service_pb2.ServerMetadataResponse(
            name=oip_tensors.SERVER_NAME,
            version=oip_tensors.server_version(),
            extensions=oip_tensors.EXTENSIONS,
        )

    def ModelMetadata(self, request, context):  # noqa: N802
        self._check(context)
        try:
            model = self.service.manager.model(request.name)
            loaded, _ = model.resolve(*oip_tensors.version_or_label(request.version))
        except ServingError as error:
            context.abort(error.code, error.message)
        found = oip_tensors.model_metadata(model, loaded.servable.signature(None))
        return service_pb2.ModelMetadataResponse(
            name=found["name"],
            versions=found["versions"],
            platform=found["platform"],
            inputs=[_tensor_metadata(entry) for entry in found["inputs"]],
            outputs=[_tensor_metadata(entry) for entry in found["outputs"]],
        )

    def ModelInfer(self, request, context):  # noqa: N802
        self._check(context)
        started = time.perf_counter()
        service = self.service
        request_id = (
            oip_tensors.request_id(_metadata(context).get("x-request-id", ""))
            or oip_tensors.request_id(request.id)
            or uuid.uuid4().hex
        )
        served_version, arm = "", ""
        try:
            inputs = read_inputs(request)
            signature = request.parameters.get("signature_name")
            signature_name = signature.string_param if signature is not None else None
            service.admit()
            try:
                call, wanted = oip_tensors.begin_infer(
                    service,
                    PROTOCOL,
                    request_id,
                    request.model_name,
                    request.model_version,
                    signature_name or None,
                    inputs,
                    [output.name for output in request.outputs],
                )
                served_version = str(call.loaded.servable.version)
                future = service.submit_logged(call)
                error = future.exception()  # waits
                served_version, arm = str(call.loaded.servable.version), call.arm or ""
                if error is not None:
                    raise error
                outputs = future.result()
            finally:
                service.release()
        except ServingError as error:
            service.observe(
                PROTOCOL, "infer", error.code.name, request.model_name, served_version, started, arm
            )
            context.abort(error.code, error.message)
        response = service_pb2.ModelInferResponse(
            model_name=call.model, model_version=served_version, id=request.id
        )
        for name in wanted:
            values = np.asarray(outputs[name])
            response.outputs.add(
                name=name, datatype=oip_tensors.datatype_of(values), shape=list(values.shape)
            )
            # The values go in raw_output_contents, in the outputs' order, as Triton sends them.
            response.raw_output_contents.append(oip_tensors.encode_tensor(values))
        trailing = [("x-request-id", request_id), ("x-model-version", served_version)]
        if call.batch.unknown:
            trailing.append(("x-unknown-features", ",".join(call.batch.unknown)))
        context.set_trailing_metadata(trailing)
        service.observe(PROTOCOL, "infer", "OK", request.model_name, served_version, started, arm)
        return response


def add_to_server(server: grpc.Server, service: PredictService, token: str | None) -> None:
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(service, token), server
    )

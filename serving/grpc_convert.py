"""TF Serving's protos for status and metadata, shared by the gRPC and REST APIs."""

from __future__ import annotations

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, status_pb2

from serving.servable import Servable
from serving.versions import Model

UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED
_NUMPY_TO_TF = {
    np.dtype("float32"): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype("float64"): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype("int32"): (types_pb2.DT_INT32, "int_val"),
    np.dtype("int64"): (types_pb2.DT_INT64, "int64_val"),
    np.dtype("bool"): (types_pb2.DT_BOOL, "bool_val"),
    np.dtype("object"): (types_pb2.DT_STRING, "string_val"),
}


def status_response(model: Model, version: int | None, label: str | None):
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state, error in model.status(version, label):
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
        entry.status.SetInParent()  # OK is written out, as TF Serving does
        if error:
            entry.status.CopyFrom(status_pb2.StatusProto(error_code=2, error_message=error))
    return response


def signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    found = get_model_metadata_pb2.SignatureDefMap()
    for name, definition in servable.meta_graph.signature_def.items():
        found.signature_def[name].CopyFrom(definition)
    return found


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(signature_def_map(servable))
    return response


def metadata_json(servable: Servable) -> dict:
    """GetModelMetadataResponse as TF Serving's REST API writes it (the Any unpacked)."""
    return {
        "model_spec": {
            "name": servable.name,
            "signature_name": "",
            "version": str(servable.version),
        },
        "metadata": {
            "signature_def": json_format.MessageToDict(
                signature_def_map(servable), preserving_proto_field_name=True
            )
        },
    }


def fill_tensor_proto(proto: tensor_pb2.TensorProto, values: np.ndarray) -> None:
    """Write a numpy output into an empty TensorProto, through the typed repeated field (fast),
    in place: a response's own map entry, with no second proto to build and copy."""
    values = np.asarray(values)
    dtype, field = _NUMPY_TO_TF.get(values.dtype, (None, None))
    if dtype is None:
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(values))
        return
    proto.dtype = dtype
    proto.tensor_shape.SetInParent()  # present even for a scalar, as before
    dims = proto.tensor_shape.dim
    for size in values.shape:
        dims.add(size=size)
    getattr(proto, field).extend(values.ravel().tolist())

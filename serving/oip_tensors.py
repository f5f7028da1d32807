"""Open Inference Protocol (KServe v2) tensors <-> this server's checked examples and outputs.

Shared by the REST front end (serving/oip_rest.py) and the gRPC one (serving/oip_grpc.py).
A request carries BYTES tensors in one of two forms:
  - one tensor named as the signature's input ("examples") of serialized tf.Examples;
  - one tensor per feature the model reads (product, issue, ...), shape [N] each, same N:
    row i of every tensor is example i.
Both become the same Batch the TF Serving API makes (serving.request_examples), checked the same
way, so routing, batching and the request log see no difference. Outputs go back as the
signature's tensors, FP32 for dispute_probability and INT64 for disputed.
"""

from __future__ import annotations

import importlib.metadata
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import types_pb2

from serving import example_wire, request_examples
from serving.errors import invalid, too_large
from serving.request_examples import Batch
from serving.routing import assign
from serving.servable import Signature
from serving.versions import Model, ModelManager

PLATFORM = "tensorflow_savedmodel"  # Triton's name for a TensorFlow SavedModel
SERVER_NAME = "cfpb-serving"
EXTENSIONS = ["binary_tensor_data"]  # Triton's binary tensor extension (tritonclient's default)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
NUMPY_TO_OIP = {
    np.dtype("float32"): "FP32",
    np.dtype("float64"): "FP64",
    np.dtype("int32"): "INT32",
    np.dtype("int64"): "INT64",
    np.dtype("bool"): "BOOL",
    np.dtype("object"): "BYTES",
}
TF_TO_OIP = {
    types_pb2.DT_FLOAT: "FP32",
    types_pb2.DT_DOUBLE: "FP64",
    types_pb2.DT_INT32: "INT32",
    types_pb2.DT_INT64: "INT64",
    types_pb2.DT_BOOL: "BOOL",
    types_pb2.DT_STRING: "BYTES",
}


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[bytes]  # flattened row-major


def server_version() -> str:
    """What runs the models: the TensorFlow release (the server is this project's)."""
    return f"tensorflow-{importlib.metadata.version('tensorflow')}"


def request_id(given: str) -> str | None:
    """A client's id, if it is fit for the request log (ids go into file names and headers)."""
    return given if REQUEST_ID.match(given or "") else None


def version_or_label(text: str | None) -> tuple[int | None, str | None]:
    """A URL's or request's model_version: an integer version, else one of the model's labels
    (stable, canary); empty means the server chooses (latest, or the rollout's split)."""
    if not text:
        return None, None
    if text.isascii() and text.isdigit():
        return int(text), None
    return None, text


def check_shape(name: str, datatype: str, shape, count: int) -> int:
    """The number of rows of an input tensor of `count` elements; refused unless BYTES [N]."""
    if datatype != "BYTES":
        raise invalid(
            f"input {name!r} has datatype {datatype}; this model takes BYTES (serialized "
            "tf.Examples, or one text feature per tensor)"
        )
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise invalid(f"input {name!r}: shape must be a list of non-negative integers")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise invalid(
            f"input {name!r} has shape {shape}; send [N] (or [N, 1]), one row per example"
        )
    if shape[0] != count:
        raise invalid(f"input {name!r} has shape {shape} but {count} element(s) of data")
    return count


def decode_bytes(raw: bytes, name: str) -> list[bytes]:
    """A BYTES tensor in the binary extension's layout: each element a 4-byte little-endian
    length, then its bytes."""
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise invalid(f"input {name!r}: binary BYTES data ends inside an element's length")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise invalid(f"input {name!r}: binary BYTES data ends inside an element")
        values.append(raw[offset : offset + size])
        offset += size
    return values


def encode_tensor(values: np.ndarray) -> bytes:
    """An output in the binary extension's layout (BYTES length-prefixed, numbers little-endian)."""
    if values.dtype == object:
        return b"".join(struct.pack("<I", len(v)) + v for v in values.ravel())
    return values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()


def datatype_of(values: np.ndarray) -> str:
    return NUMPY_TO_OIP.get(values.dtype, "BYTES")


def to_batch(inputs: list[InputTensor], signature: Signature, max_instances: int) -> Batch:
    """The checked examples of a request's input tensors, for one signature (see module doc)."""
    if not inputs:
        raise invalid("the request has no inputs")
    names = [tensor.name for tensor in inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise invalid(f"input(s) {', '.join(map(repr, repeated))} given more than once")
    takes = (
        f"this model takes {signature.input_name!r} (serialized tf.Examples) or one BYTES "
        f"tensor per feature: {', '.join(sorted(signature.features))}"
    )
    if signature.input_name in names:
        if len(inputs) != 1:
            raise invalid(f"input {signature.input_name!r} cannot be mixed with others; {takes}")
        return request_examples.parse_serialized(inputs[0].values, signature, max_instances)
    unknown = [name for name in names if name not in signature.features]
    if unknown:
        raise invalid(f"unknown input(s) {', '.join(map(repr, unknown))}; {takes}")
    rows = {len(tensor.values) for tensor in inputs}
    if len(rows) != 1:
        sizes = ", ".join(f"{t.name}: {len(t.values)}" for t in inputs)
        raise invalid(f"every input must have the same number of rows; got {sizes}")
    count = rows.pop()
    if count == 0:
        raise invalid("the request has no examples")
    if count > max_instances:
        raise too_large(f"the request has {count} examples; this server takes {max_instances}")
    examples: list[example_wire.Features] = [
        {tensor.name: ("bytes", [tensor.values[i]]) for tensor in inputs} for i in range(count)
    ]
    batch = Batch([example_wire.encode(example) for example in examples], examples)
    batch.unknown = request_examples.check(examples, signature)
    return batch


def batch_source(inputs: list[InputTensor], max_instances: int) -> Callable[[Signature], Batch]:
    """What Call.source holds: the request parsed again for another version's signature."""
    return lambda signature: to_batch(inputs, signature, max_instances)


def wanted_outputs(names: list[str], signature: Signature) -> list[str]:
    """The outputs a request asks for (all of the signature's when it names none)."""
    unknown = [name for name in names if name not in signature.output_names]
    if unknown:
        raise invalid(
            f"unknown output(s) {', '.join(map(repr, unknown))}; signature "
            f"{signature.name!r} has: {', '.join(signature.output_names)}"
        )
    if len(set(names)) != len(names):
        raise invalid("an output is asked for more than once")
    return names or list(signature.output_names)


def _tensor_metadata(name: str, info) -> dict:
    shape = [-1 if d.size < 0 else d.size for d in info.tensor_shape.dim]
    if info.tensor_shape.unknown_rank:
        shape = [-1]
    return {"name": name, "datatype": TF_TO_OIP.get(info.dtype, "BYTES"), "shape": shape}


def model_metadata(model: Model, signature: Signature) -> dict:
    """The model metadata response: every version served, and the tensors of one signature."""
    definition = signature.definition
    return {
        "name": model.name,
        "versions": [str(version) for version in sorted(model.available)],
        "platform": PLATFORM,
        "inputs": [_tensor_metadata(n, i) for n, i in sorted(definition.inputs.items())],
        "outputs": [_tensor_metadata(n, i) for n, i in sorted(definition.outputs.items())],
    }


def model_ready(model: Model, version: int | None, label: str | None) -> bool:
    """Whether the version (a label's, or any when neither is named) can take requests."""
    try:
        model.resolve(version, label)
    except Exception:  # ServingError NOT_FOUND: a version or label that is not loaded
        return False
    return True


def server_ready(manager: ModelManager) -> bool:
    """Ready when every model served has a version loaded, as TF Serving's status reports."""
    return all(model.available for model in manager.models.values())


def begin_infer(
    service,
    protocol: str,
    request_id: str,
    model: str,
    version_text: str | None,
    signature_name: str | None,
    inputs: list[InputTensor],
    output_names: list[str],
):
    """(call, output names) of an admitted infer request, parsed and routed as TF Serving's
    predict is: no version named goes through the rollout's split (and shadow); a version or a
    label named is explicit. The caller submits the call and releases the service."""
    version, label = version_or_label(version_text)
    call = service.begin(request_id, protocol, model, version, label, signature_name)
    call.source = batch_source(inputs, service.max_instances)
    call.batch = call.source(call.signature)
    wanted_outputs(output_names, call.signature)  # refused before the routing moves anything
    assign(service.router, call)
    return call, wanted_outputs(output_names, call.signature)

"""One loaded model version: its signatures, the features it parses, warm-up, and calls.

The features a signature knows are read from the model itself: the keys of the ParseExample
ops reachable from the signature in saved_model.pb. A server-side list would drift from the
model the day the pipeline adds a column.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from models import features

log = logging.getLogger("serving")
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
PARSE_OPS = ("ParseExampleV2", "ParseExample", "ParseSingleExample")
EXAMPLE_DTYPES = {types_pb2.DT_STRING: "bytes", types_pb2.DT_INT64: "int64"}


@dataclass
class FeatureSpec:
    """What one feature of a serialized tf.Example must hold for the model to parse it."""

    kind: str  # bytes, int64 or float: the tf.train.Feature list it must be
    size: int | None  # values required when present (dense); None for sparse/ragged


@dataclass
class Signature:
    name: str
    definition: meta_graph_pb2.SignatureDef
    input_name: str | None  # its one DT_STRING input of serialized examples, if it has one
    output_names: list[str]
    features: dict[str, FeatureSpec] = field(default_factory=dict)  # empty: unknown


def read_meta_graph(path: str) -> meta_graph_pb2.MetaGraphDef:
    """The 'serve' MetaGraphDef of a SavedModel folder, read without loading TensorFlow ops."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError("the SavedModel has no 'serve' meta graph")


def _called_functions(nodes) -> set[str]:
    names = set()
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("func"):
                names.add(value.func.name)
            names.update(f.name for f in value.list.func)
    return names


def _constant(nodes_by_name: dict, tensor_name: str) -> np.ndarray | None:
    node = nodes_by_name.get(tensor_name.lstrip("^").split(":")[0])
    if node is None or node.op != "Const":
        return None
    return tf.make_ndarray(node.attr["value"].tensor)


def _parse_op_features(node, nodes_by_name: dict) -> dict[str, FeatureSpec]:
    """Feature keys and types of one ParseExample-family op."""
    found: dict[str, FeatureSpec] = {}

    def add(keys, dtypes, sizes=None) -> None:
        for key, dtype, size in zip(keys, dtypes, sizes or itertools.repeat(None), strict=False):
            name = key.decode() if isinstance(key, bytes) else str(key)
            found[name] = FeatureSpec(EXAMPLE_DTYPES.get(dtype, "float"), size)

    attr = node.attr
    dense_sizes = [int(np.prod([d.size for d in s.dim])) for s in attr["dense_shapes"].list.shape]
    if node.op == "ParseExampleV2":
        sparse, dense, ragged = (_constant(nodes_by_name, node.input[i]) for i in (2, 3, 4))
        add(sparse if sparse is not None else [], attr["sparse_types"].list.type)
        add(dense if dense is not None else [], attr["Tdense"].list.type, dense_sizes)
        add(ragged if ragged is not None else [], attr["ragged_value_types"].list.type)
    elif node.op == "ParseExample":
        n_sparse, n_dense = attr["Nsparse"].i, attr["Ndense"].i
        keys = [_constant(nodes_by_name, name) for name in node.input[2 : 2 + n_sparse + n_dense]]
        keys = [k.item() if k is not None else b"" for k in keys]
        add(keys[:n_sparse], attr["sparse_types"].list.type)
        add(keys[n_sparse:], attr["Tdense"].list.type, dense_sizes)
    else:  # ParseSingleExample keeps its keys in attributes
        add(attr["sparse_keys"].list.s, attr["sparse_types"].list.type)
        add(attr["dense_keys"].list.s, attr["Tdense"].list.type, dense_sizes)
    return found


def parsed_features(meta_graph: meta_graph_pb2.MetaGraphDef, signature: str) -> dict:
    """Features parsed by ops reachable from a signature's outputs; {} when none is found."""
    graph: graph_pb2.GraphDef = meta_graph.graph_def
    graph_nodes = {node.name: node for node in graph.node}
    definition = meta_graph.signature_def[signature]
    # Graph nodes the signature's outputs depend on, then the functions they call, transitively.
    pending = [info.name.split(":")[0] for info in definition.outputs.values()]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in graph_nodes:
            continue
        seen.add(name)
        pending.extend(i.lstrip("^").split(":")[0] for i in graph_nodes[name].input)
    library = {function.signature.name: function for function in graph.library.function}
    to_visit = _called_functions(graph_nodes[name] for name in seen)
    visited: set[str] = set()
    found: dict[str, FeatureSpec] = {}
    for name in seen:
        if graph_nodes[name].op in PARSE_OPS:
            found.update(_parse_op_features(graph_nodes[name], graph_nodes))
    while to_visit:
        name = to_visit.pop()
        if name in visited or name not in library:
            continue
        visited.add(name)
        nodes = library[name].node_def
        by_name = {node.name: node for node in nodes}
        for node in nodes:
            if node.op in PARSE_OPS:
                found.update(_parse_op_features(node, by_name))
        to_visit |= _called_functions(nodes) - visited
    return found


def describe_signatures(meta_graph: meta_graph_pb2.MetaGraphDef) -> dict[str, Signature]:
    signatures = {}
    for name, definition in meta_graph.signature_def.items():
        if name.startswith("__"):  # __saved_model_init_op and friends
            continue
        inputs = list(definition.inputs.items())
        input_name = None
        if len(inputs) == 1 and inputs[0][1].dtype == types_pb2.DT_STRING:
            input_name = inputs[0][0]
        known = parsed_features(meta_graph, name) if input_name else {}
        if input_name and not known and name == DEFAULT_SIGNATURE:
            # No parse op found (an unusual export): fall back to the pipeline's columns.
            known = {key: FeatureSpec("bytes", None) for key in features.RAW_FEATURE_KEYS}
        signatures[name] = Signature(
            name, definition, input_name, sorted(definition.outputs), known
        )
    return signatures


class Servable:
    """A SavedModel version loaded in this process."""

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        self.meta_graph = read_meta_graph(path)
        self.signatures = describe_signatures(self.meta_graph)
        self._loaded = tf.saved_model.load(path, tags=["serve"])
        self._functions = {name: self._loaded.signatures[name] for name in self.signatures}

    def signature(self, name: str) -> Signature:
        found = self.signatures.get(name or DEFAULT_SIGNATURE)
        if found is None:
            raise KeyError(name)
        return found

    def run(self, signature: str, serialized: list[bytes]) -> dict[str, np.ndarray]:
        """Call a signature on serialized examples; outputs as numpy arrays."""
        found = self.signatures[signature]
        outputs = self._functions[signature](**{found.input_name: tf.constant(serialized)})
        return {name: value.numpy() for name, value in outputs.items()}

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 8)) -> int:
        """Run the model before it takes traffic (with TF Serving's warm-up file if present)."""
        recorded = warmup_records(os.path.join(self.path, WARMUP_FILE))
        calls = 0
        for signature, batch in recorded:
            if signature in self.signatures and self.signatures[signature].input_name:
                self.run(signature, batch)
                calls += 1
        if calls:
            return calls
        default = self.signatures.get(DEFAULT_SIGNATURE)
        if default is None or default.input_name is None:
            return 0
        example = tf.train.Example()
        for key, spec in default.features.items():
            if spec.kind == "bytes":
                example.features.feature[key].bytes_list.value.extend([b""] * (spec.size or 1))
        for size in batch_sizes:
            for _ in range(2):
                self.run(DEFAULT_SIGNATURE, [example.SerializeToString()] * size)
                calls += 1
        return calls


def warmup_records(path: str, limit: int = 100) -> list[tuple[str, list[bytes]]]:
    """(signature, serialized examples) of the predict requests in a TF Serving warm-up file."""
    if not os.path.isfile(path):
        return []
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(path).take(limit):
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.HasField("predict_log"):
            request = entry.predict_log.request
            for tensor in request.inputs.values():
                signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
                requests.append((signature, list(tensor.string_val)))
    return requests

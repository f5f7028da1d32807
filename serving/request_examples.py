"""Requests to tf.Examples, checked against the features the model parses.

A predict body in TF Serving's row ("instances") or columnar ("inputs") format carries, for a
signature whose one input is serialized tf.Examples, either {"b64": ...} serialized examples or,
as this server's extension, plain feature objects ({"product": "Mortgage", ...}) that are turned
into tf.Examples here. Either way every example is parsed and checked before the model sees it:
a model given only features it does not know answers a constant, which is worse than an error.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from models import features
from serving import example_wire
from serving.errors import ServingError, invalid, too_large
from serving.servable import FeatureSpec, Signature

# Random bytes that happen to parse make protobuf warn; the schema check refuses them anyway.
warnings.filterwarnings("ignore", message="Unexpected end-group tag", category=RuntimeWarning)


MAX_NAMES = 50  # unknown feature names reported (header, error, log): clients choose them


@dataclass
class Batch:
    """Checked examples of one request: serialized for the model, as features for the log."""

    serialized: list[bytes]
    examples: list[example_wire.Features]
    unknown: list[str] = field(default_factory=list)  # feature names the model does not read
    columnar: bool = False


def _wrong_type(name: str, kind: str | None) -> ServingError:
    wanted = {"bytes": "a string", "int64": "an integer", "float": "a number"}.get(kind or "")
    return invalid(
        f"feature {name!r} has a value of the wrong type"
        + (f": the model reads {wanted} (or a list of them)" if wanted else "")
    )


def _feature(name: str, value, spec: FeatureSpec | None) -> tuple[str, list]:
    """(kind, values) of one JSON feature value, typed as the model reads that feature."""
    values = value if isinstance(value, list) else [value]
    kind = spec.kind if spec else None
    if all(type(v) is str for v in values):
        if kind not in (None, "bytes"):
            raise _wrong_type(name, kind)
        return "bytes", [v.encode() for v in values]
    if all(isinstance(v, dict) and set(v) == {"b64"} for v in values):
        if kind not in (None, "bytes"):
            raise _wrong_type(name, kind)
        return "bytes", [_b64(v["b64"], name) for v in values]
    if all(type(v) is int for v in values):
        if kind == "bytes":  # a number for a text column, e.g. complaint_id: 3456789
            return "bytes", [str(v).encode() for v in values]
        if not -(2**63) <= min(values) <= max(values) < 2**63:
            raise invalid(f"feature {name!r} has an integer out of int64 range")
        return ("float", values) if kind == "float" else ("int64", values)
    if all(type(v) in (int, float) for v in values) and kind in (None, "float"):
        return "float", values
    raise _wrong_type(name, kind)


def _b64(text, where: str) -> bytes:
    if not isinstance(text, str):
        raise invalid(f"{where}: the value of 'b64' must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: 'b64' is not valid base64") from None


def features_of(instance: dict, signature: Signature) -> example_wire.Features:
    """The features of a plain JSON feature object; null values are left out."""
    known = signature.features
    return {
        name: _feature(name, value, known.get(name))
        for name, value in instance.items()
        if value is not None and value != []
    }


def _decoded(serialized: bytes, where: str) -> example_wire.Features:
    try:
        return example_wire.decode(serialized)
    except (DecodeError, RuntimeError):
        raise invalid(f"{where} is not a serialized tf.train.Example") from None


def _instance(value, signature: Signature, index: int) -> tuple[bytes, example_wire.Features]:
    """(serialized example, its features) of one instance."""
    if isinstance(value, dict) and len(value) == 1 and signature.input_name in value:
        value = value[signature.input_name]  # the named-input form of the row format
    if isinstance(value, dict) and len(value) == 1 and "b64" in value:
        serialized = _b64(value["b64"], f"instance {index}")
    elif isinstance(value, str):  # a DT_STRING tensor's value as plain text
        serialized = value.encode()
    elif isinstance(value, dict):
        found = features_of(value, signature)
        return example_wire.encode(found), found
    else:
        raise invalid(
            f'instance {index} must be a feature object, {{"b64": serialized tf.Example}} '
            f"or a string; got {type(value).__name__}"
        )
    return serialized, _decoded(serialized, f"instance {index}")


def _rows(body: dict, signature: Signature) -> tuple[list, bool]:
    if "instances" in body and "inputs" in body:
        raise invalid("a request can have 'instances' or 'inputs', not both")
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise invalid("'instances' must be a list")
        return rows, False
    if "inputs" not in body:
        raise invalid("missing 'instances' or 'inputs' in the request body")
    columns = body["inputs"]
    if isinstance(columns, dict) and set(columns) == {signature.input_name}:
        columns = columns[signature.input_name]
    if isinstance(columns, list):
        return columns, True
    if isinstance(columns, dict) and columns:  # feature columns: {"product": [...], ...}
        lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise invalid("every feature column of 'inputs' must be a list of the same length")
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        return [dict(zip(names, row, strict=True)) for row in rows], True
    raise invalid("'inputs' must be a list or an object of input name to values")


def parse_predict(body, signature: Signature, max_instances: int) -> Batch:
    """The checked examples of a decoded predict body."""
    if not isinstance(body, dict):
        raise invalid("the request body must be a JSON object")
    rows, columnar = _rows(body, signature)
    if not rows:
        raise invalid("the request has no instances")
    if len(rows) > max_instances:
        raise too_large(f"the request has {len(rows)} instances; this server takes {max_instances}")
    serialized, examples = [], []
    for index, row in enumerate(rows):
        raw, example = _instance(row, signature, index)
        serialized.append(raw)
        examples.append(example)
    batch = Batch(serialized, examples, columnar=columnar)
    batch.unknown = check(examples, signature)
    return batch


def parse_serialized(serialized: list[bytes], signature: Signature, max_instances: int) -> Batch:
    """The checked examples of a gRPC request's serialized tf.Examples."""
    if not serialized:
        raise invalid("the request has no examples")
    if len(serialized) > max_instances:
        raise too_large(
            f"the request has {len(serialized)} examples; this server takes {max_instances}"
        )
    examples = [_decoded(raw, f"example {index}") for index, raw in enumerate(serialized)]
    batch = Batch(list(serialized), examples)
    batch.unknown = check(examples, signature)
    return batch


def learned_and_passthrough(known: dict) -> tuple[set[str], set[str]]:
    """(features the model learns from, passthrough keys it reads) of a signature's features.

    Only PASSTHROUGH_KEYS the model reads count as passthrough; a model that reads nothing else
    (not the pipeline's) learns from them, so they count as learned there.
    """
    passthrough = {name for name in features.PASSTHROUGH_KEYS if name in known}
    learned = set(known) - passthrough
    return (learned, passthrough) if learned else (set(known), set())


def _refusal(
    index: int, strangers: list[str], carried: list[str], learned: set[str]
) -> ServingError:
    names = ", ".join(sorted(strangers)[:MAX_NAMES])
    note = "(carried for joins and slicing, never learned from)"
    if strangers and carried:
        what = f"only unknown features: {names} and passthrough {', '.join(carried)} {note}"
    elif strangers:
        what = f"only unknown features: {names}"
    elif carried:
        what = f"only passthrough features: {', '.join(carried)} {note}"
    else:
        what = "no features"
    return invalid(
        f"instance {index} has {what}. The model learns from: {', '.join(sorted(learned))}"
    )


def check(examples: list[example_wire.Features], signature: Signature) -> list[str]:
    """Unknown feature names across the batch; refuses examples the model cannot use.

    An example is refused unless it has a feature the model learns from: one with only unknown
    or passthrough features (an id and tags) would get the model's constant answer.
    """
    known = signature.features
    if not known:
        return []  # nothing to check against
    learned, passthrough = learned_and_passthrough(known)
    unknown: set[str] = set()
    for index, example in enumerate(examples):
        strangers = [name for name in example if name not in known]
        unknown.update(strangers)
        if not any(name in learned for name in example):
            carried = sorted(name for name in example if name in passthrough)
            raise _refusal(index, strangers, carried, learned)
        for name, (kind, values) in example.items():
            spec = known.get(name)
            if spec is None:
                continue
            if kind != spec.kind and values:
                raise invalid(f"instance {index}: feature {name!r} must hold {spec.kind} values")
            if spec.size is not None and len(values) != spec.size:  # would fail the whole batch
                raise invalid(
                    f"instance {index}: feature {name!r} must have {spec.size} value(s), "
                    f"has {len(values)}"
                )
    return sorted(unknown)[:MAX_NAMES]

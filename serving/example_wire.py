"""tf.train.Example <-> {name: (kind, values)}, with the encoder written to the wire format.

Building an Example through protobuf's Python API costs about 80 us for the 13 CFPB columns;
writing the same bytes directly costs a tenth of that, and every REST request with plain
features pays it. Reading is the same story for every gRPC request: protobuf parses an Example
fast but hands its feature map to Python slowly (40 us for the 13 columns); reading the wire
directly takes half that. Only the plain layout protobuf itself writes is read that way (one
features field, each entry a key then a value with one kind, lists packed); anything else
(merged or repeated fields, unknown fields, unpacked numbers, bad bytes) goes to protobuf, so
it decides, and raises, exactly as before. The format is small and fixed
(tensorflow/core/example/example.proto):
  Example  { Features features = 1; }
  Features { map<string, Feature> feature = 1; }   (map entry: key = 1, value = 2)
  Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
                          Int64List int64_list = 3; } }
  *List    { repeated <type> value = 1; }           (floats and int64s packed)
tests/unit/test_serving_inputs.py checks the bytes against protobuf's own parser.
"""

from __future__ import annotations

import struct

from tensorflow.core.example import example_pb2

Features = dict[str, tuple[str, list]]  # name -> (bytes, int64 or float; values)
_KIND_FIELD = {"bytes": 1, "float": 2, "int64": 3}
_ONEOF_KIND = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


_ONE_BYTE = [bytes((n,)) for n in range(128)]
_KEYS: dict[str, bytes] = {}  # feature name -> its encoded map key field, built once


def _varint(value: int) -> bytes:
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2); every field number here fits the one tag byte."""
    return _ONE_BYTE[number << 3 | 2] + _varint(len(payload)) + payload


def _feature(kind: str, values: list) -> bytes:
    if kind == "bytes":
        listed = b"".join(_field(1, value) for value in values)
    elif kind == "float":
        listed = _field(1, struct.pack(f"<{len(values)}f", *values)) if values else b""
    else:
        listed = _field(1, b"".join(_varint(value) for value in values)) if values else b""
    return _field(_KIND_FIELD[kind], listed)


def encode(features: Features) -> bytes:
    """The serialized tf.train.Example of features."""
    entries = []
    for name, (kind, values) in features.items():
        key = _KEYS.get(name)
        if key is None:
            key = _field(1, name.encode())
            if len(_KEYS) < 10_000:  # bounded: names come from clients
                _KEYS[name] = key
        entries.append(_field(1, key + _field(2, _feature(kind, values))))
    entries = b"".join(entries)
    return _field(1, entries) if entries else b""


def decode(serialized: bytes) -> Features:
    """The features of a serialized tf.train.Example (raises DecodeError if it is not one)."""
    try:
        return _read(serialized)
    except (_UnusualError, IndexError, UnicodeDecodeError):
        pass
    example = example_pb2.Example.FromString(serialized)
    out: Features = {}
    for name, feature in example.features.feature.items():
        which = feature.WhichOneof("kind")
        if which is None:
            out[name] = ("bytes", [])
        else:
            out[name] = (_ONEOF_KIND[which], list(getattr(feature, which).value))
    return out


class _UnusualError(Exception):
    """Wire data the direct reader leaves to protobuf."""


_LIST_KIND = {0x0A: "bytes", 0x12: "float", 0x1A: "int64"}  # a Feature's tag byte -> its kind


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(the varint at `at`, the position after it)."""
    byte = data[at]
    if byte < 0x80:
        return byte, at + 1
    value, shift = byte & 0x7F, 7
    at += 1
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise _UnusualError


def _int64s(data: bytes, at: int, stop: int) -> list[int]:
    values = []
    while at < stop:
        value, at = _read_varint(data, at)
        if value >> 64:
            raise _UnusualError
        values.append(value - (1 << 64) if value >> 63 else value)  # two's complement
    if at != stop:
        raise _UnusualError
    return values


def _read(data: bytes) -> Features:
    """The features of an Example in the layout protobuf writes; _UnusualError for anything else.

    Each position is checked before it is trusted: a length past its message, a second entry
    for a name or a tag other than the one expected all end in _UnusualError (IndexError past the
    end), never in an answer protobuf would not give."""
    out: Features = {}
    end = len(data)
    if not end:
        return out
    if data[0] != 0x0A:  # Example.features
        raise _UnusualError
    size, at = _read_varint(data, 1)
    if at + size != end:
        raise _UnusualError
    while at < end:
        if data[at] != 0x0A:  # Features.feature, a map entry
            raise _UnusualError
        size, at = _read_varint(data, at + 1)
        stop = at + size
        if stop > end or data[at] != 0x0A:  # its key first
            raise _UnusualError
        size, at = _read_varint(data, at + 1)
        name = data[at : at + size].decode()
        at += size
        if at >= stop or data[at] != 0x12 or name in out:  # then its value, once
            raise _UnusualError
        size, at = _read_varint(data, at + 1)
        if at + size != stop:
            raise _UnusualError
        if size == 0:  # a Feature with no kind set
            out[name] = ("bytes", [])
            continue
        kind = _LIST_KIND.get(data[at])
        if kind is None:
            raise _UnusualError
        size, at = _read_varint(data, at + 1)
        if at + size != stop:
            raise _UnusualError
        values: list = []
        if kind == "bytes":
            while at < stop:
                if data[at] != 0x0A:
                    raise _UnusualError
                size, at = _read_varint(data, at + 1)
                values.append(data[at : at + size])
                at += size
            if at != stop:
                raise _UnusualError
        elif size:
            if data[at] != 0x0A:  # numbers packed, as protobuf writes them
                raise _UnusualError
            size, at = _read_varint(data, at + 1)
            if at + size != stop:
                raise _UnusualError
            if kind == "int64":
                values = _int64s(data, at, stop)
            elif size % 4:
                raise _UnusualError
            else:
                values = list(struct.unpack_from(f"<{size // 4}f", data, at))
        out[name] = (kind, values)
        at = stop
    return out

"""tf.Example records for a whole record batch at once, and gzipped TFRecord files of them.

Building one tf.train.Example per row in Python, then handing each to Beam's TFRecord sink
at gzip level 6, cost about 130 us a row (benchmarks/README.md). Here a block of rows is
serialized column by column with Arrow's vectorized kernels, and each block's records are
framed and compressed as one buffer.

The bytes are what `Example.SerializeToString(deterministic=True)` gives (map keys sorted),
which matters: TFX hashes each record's bytes to pick its split.
"""

from __future__ import annotations

import hashlib
import zlib

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

# Level 1 compresses 4x faster than zlib's default 6, for files about 20% larger.
GZIP_LEVEL = 1
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header, as TFRecord's GZIP reader expects
_EMPTY = pa.scalar(b"", pa.binary())
_MAX_VARINT_BYTES = 5  # lengths below 2**35; Arrow's binary offsets are 32-bit anyway


def _varint_widths(values: np.ndarray) -> np.ndarray:
    """How many bytes each non-negative integer takes as a protobuf base-128 varint."""
    widths = np.ones(len(values), np.int64)
    for shift in range(7, 7 * _MAX_VARINT_BYTES, 7):
        widths += values >= (1 << shift)
    return widths


def _varint_digits(values: np.ndarray) -> np.ndarray:
    """Each value's varint bytes, left-aligned in a row of _MAX_VARINT_BYTES."""
    more = np.arange(1, _MAX_VARINT_BYTES + 1) < _varint_widths(values)[:, None]
    shifts = np.arange(0, 7 * _MAX_VARINT_BYTES, 7, dtype=np.uint64)
    digits = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(0x7F)
    return (digits | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)


def _row_bytes(rows: int, pieces: list[bytes | np.ndarray]) -> pa.Array:
    """Per row, the pieces concatenated: constant bytes, or one varint per row."""
    blocks, keep = [], []
    for piece in pieces:
        if isinstance(piece, bytes):
            constant = np.frombuffer(piece, np.uint8)
            blocks.append(np.broadcast_to(constant, (rows, len(constant))))
            keep.append(np.ones((rows, len(constant)), bool))
        else:
            blocks.append(_varint_digits(piece))
            keep.append(np.arange(_MAX_VARINT_BYTES) < _varint_widths(piece)[:, None])
    mask = np.hstack(keep)
    return _binary_array(np.cumsum(mask.sum(axis=1)), np.hstack(blocks)[mask])


def _binary_array(ends: np.ndarray, data: np.ndarray | bytes) -> pa.Array:
    """A binary array over `data`, value i ending at ends[i] (no copy of the data)."""
    offsets = np.concatenate([[0], ends]).astype(np.int32)
    return pa.Array.from_buffers(
        pa.binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _distinct(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct lengths, and each row's index among them (np.unique without sorting)."""
    if lengths.max(initial=0) > 1 << 20:  # a count per possible length would be too big
        return np.unique(lengths, return_inverse=True)
    seen = np.bincount(lengths)
    distinct = np.flatnonzero(seen)
    index = np.zeros(len(seen), np.int64)
    index[distinct] = np.arange(len(distinct))
    return distinct, index[lengths]


def _length(values: np.ndarray) -> np.ndarray:
    """A length-delimited field's size: tag byte, varint length, payload."""
    return 1 + _varint_widths(values) + values


def feature_entry(key: str, feature: tf.train.Feature) -> bytes:
    """One entry of Features' map, serialized: a Features message holding only it."""
    return tf.train.Features(feature={key: feature}).SerializeToString()


def _bytes_entry_heads(key: str, lengths: np.ndarray) -> tuple[pa.Array, np.ndarray]:
    """Everything of each row's `key: Feature(bytes_list=[value])` map entry but the value,
    and the entry's whole size. The nesting is entry(1){key(1), Feature(2){BytesList(1)
    {value(1)}}}, each field a tag byte and a varint length."""
    key_bytes = key.encode("utf-8")
    if len(key_bytes) > 0x7F:  # its length would take a longer varint
        raise ValueError(f"feature name {key!r} is longer than 127 bytes")
    # Most columns have a few distinct lengths: build each distinct head once.
    distinct, row_of = _distinct(lengths)
    bytes_list = _length(distinct)
    feature = _length(bytes_list)
    body = 2 + len(key_bytes) + _length(feature)
    pieces = [b"\x0a", body, b"\x0a" + bytes([len(key_bytes)]) + key_bytes + b"\x12"]
    pieces += [feature, b"\x0a", bytes_list, b"\x0a", distinct]
    heads = _row_bytes(len(distinct), pieces)
    return heads.take(pa.array(row_of)), _length(body)[row_of]


def serialize_rows(columns: dict[str, pa.Array], extra_entries: dict[str, pa.Array]) -> pa.Array:
    """One serialized tf.Example per row: every column a one-value bytes feature.

    `extra_entries` holds, per key, each row's ready-made map entry (see `feature_entry`),
    or null where the row lacks the feature. Keys are written sorted, as deterministic
    serialization does, and all pieces are joined in one pass.
    """
    rows = len(next(iter({**columns, **extra_entries}.values())))
    size = np.zeros(rows, np.int64)
    pieces: dict[str, list[pa.Array]] = {}
    for key, values in columns.items():
        values = values.cast(pa.binary())
        head, entry_size = _bytes_entry_heads(key, pc.binary_length(values).to_numpy())
        pieces[key], size = [head, values], size + entry_size
    for key, entries in extra_entries.items():
        pieces[key] = [entries]
        size += pc.fill_null(pc.binary_length(entries), 0).to_numpy()
    ordered = [part for key in sorted(pieces, key=str.encode) for part in pieces[key]]
    head = _row_bytes(rows, [b"\x0a", size])  # Example.features(1)
    return pc.binary_join_element_wise(head, *ordered, _EMPTY, null_handling="replace")


def split_of(records: list[bytes], buckets: list[int]) -> np.ndarray:
    """Each record's split, as TFX's ExampleGen picks it: SHA-256 of its bytes modulo the
    hash buckets (base_example_gen_executor._PartitionFn, without a partition feature)."""
    hashes = [int.from_bytes(hashlib.sha256(record).digest(), "big") for record in records]
    return np.searchsorted(buckets, [h % buckets[-1] for h in hashes], side="right")


def _masked_crcs(crcs: np.ndarray) -> np.ndarray:
    crcs = crcs.astype(np.uint32)
    return ((crcs >> np.uint32(15)) | (crcs << np.uint32(17))) + np.uint32(0xA282EAD8)


def record_crcs(records: list[bytes]) -> np.ndarray:
    """Each record's masked CRC32C, the check that follows it in a TFRecord file."""
    return _masked_crcs(np.fromiter(map(google_crc32c.value, records), np.uint32, len(records)))


def tfrecord_bytes(records: pa.Array, crcs: np.ndarray) -> pa.Buffer:
    """Records framed as a TFRecord file: length, its masked CRC, data, the data's masked CRC."""
    lengths = pc.binary_length(records).to_numpy().astype(np.int64)
    distinct, row_of = _distinct(lengths)
    length_crcs = record_crcs([length.tobytes() for length in distinct.astype("<u8")])[row_of]
    heads = np.empty(len(lengths), [("length", "<i8"), ("crc", "<u4")])
    heads["length"], heads["crc"] = lengths, length_crcs
    framed = pc.binary_join_element_wise(
        _fixed_width(heads.tobytes(), 12),
        records,
        _fixed_width(crcs.astype("<u4").tobytes(), 4),
        _EMPTY,
    )
    return framed.buffers()[2].slice(0, int(lengths.sum()) + 16 * len(lengths))


def _fixed_width(data: bytes, width: int) -> pa.Array:
    return _binary_array(np.arange(width, len(data) + 1, width), data)


def gzip_bytes(data: bytes | pa.Buffer, level: int = GZIP_LEVEL) -> bytes:
    """One gzip member; zlib releases the GIL, so blocks compress in parallel threads."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return compressor.compress(data) + compressor.flush()

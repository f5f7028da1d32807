"""Refusals made before any row is read: where the output goes, and files that are not text.

Each check returns a one-line reason (or None), never raises: data.prepare prints it and
exits 2, and the runners show prepared_file_problem's answer for every data file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import IO

from models import features

# Bytes looked at to judge a file; a prepared CSV's header line is about 230 bytes.
SNIFF_BYTES = 8192
APPLE_DOUBLE_MAGIC = b"\x00\x05\x16\x07"  # how every macOS "._" metadata file begins
NUL_GUESS = "not a UTF-8 CSV (UTF-16? a macOS ._ file?)"
# Delimiters other than a comma that a header may be split on, as an error names them.
OTHER_DELIMITERS = {";": "';'", "\t": "a tab"}


class ExportError(ValueError):
    """The input is not a CFPB export this command can read, or the output cannot be written."""


def output_problem(sources: Sequence[Path], destination: str | os.PathLike[str]) -> str | None:
    """Why the prepared CSV cannot be written to `destination`; None if it can.

    Judged from paths alone, so a bad -o is refused before a multi-GB export is read. Given
    as typed (a str), since Path drops the trailing slash that says "a folder".
    """
    named = os.fspath(destination)
    destination = Path(named)
    for source in sources:
        if _same_file(source, destination):
            return (
                f"-o {named} is the input {source}: writing it would replace the raw "
                "export. Choose another output file"
            )
    # A trailing slash names a folder even before it exists: refused like an existing one,
    # so the same -o does not write DIR/complaints.csv once and fail the next time.
    if destination.is_dir() or named.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        return (
            f"-o {named} is a folder; name the file to write, "
            f"e.g. -o {destination / 'complaints.csv'}"
        )
    for parent in destination.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"-o {named} cannot be created: {parent} is a file, not a folder"
            break
    return None


def delimiter_problem(header_line: str, wanted: Collection[str]) -> str | None:
    """The delimiter a header line holds all `wanted` names on, if not a comma (a spreadsheet's
    "CSV" in some locales), as a one-line reason; None if it splits on none of them."""
    for delimiter, shown in OTHER_DELIMITERS.items():
        try:
            names = next(csv.reader([header_line.rstrip("\r\n")], delimiter=delimiter), [])
        except csv.Error:  # e.g. a lone carriage return inside the line
            continue
        if set(wanted) <= {name.strip() for name in names}:
            return (
                f"not comma-separated: the delimiter looks like {shown} (the header splits on "
                "it into the CFPB's column names). The file must be comma-separated: "
                "re-export it as CSV with commas"
            )
    return None


def non_utf8_at(raw: IO[bytes], chunk_size: int = 1 << 20) -> tuple[int, int, str] | None:
    """Where a byte stream first stops being UTF-8: (physical line, that byte, why); or None.

    A text reader decodes ahead of the lines it has handed out, so only the bytes tell the
    line. Lines end at \\n, \\r\\n or a lone \\r, as the csv reader's lines do.
    """
    line = 1
    carried = b""  # a character cut at a chunk's end: decoded with the next chunk
    after_cr = False  # the bytes counted so far end with \r (a \r\n cut in two)
    while True:
        chunk = raw.read(chunk_size)
        data = carried + chunk
        carried = b""
        try:
            data.decode("utf-8")
            good, error = data, None
        except UnicodeDecodeError as caught:
            good, error = data[: caught.start], caught
            if chunk and caught.reason == "unexpected end of data":
                carried, error = data[caught.start :], None
        line += good.count(b"\n") + good.count(b"\r") - good.count(b"\r\n")
        if after_cr and good.startswith(b"\n"):
            line -= 1  # its \r was counted with the chunk before
        if good:
            after_cr = good.endswith(b"\r")
        if error is not None:
            return line, data[error.start], error.reason
        if not chunk:
            return None


def repeated_columns_problem(header: list[str], wanted: Collection[str]) -> str | None:
    """Names of `wanted` columns the header has more than once: which copy holds the data is
    anyone's guess, so refuse rather than pick one (the first copy may be an empty one)."""
    numbers: dict[str, list[str]] = {}
    for number, name in enumerate(header, start=1):
        if name in wanted:
            numbers.setdefault(name, []).append(str(number))
    repeated = [f"{name!r} (columns {', '.join(n)})" for name, n in numbers.items() if len(n) > 1]
    if not repeated:
        return None
    return (
        f"the header names a column more than once: {'; '.join(repeated)}. "
        "Remove or rename the extra copies, keeping the one that holds the data"
    )


def _same_file(source: Path, destination: Path) -> bool:
    """True if writing `destination` would replace `source`: same path, symlink or hard link."""
    if os.path.realpath(source) == os.path.realpath(destination):
        return True
    try:
        return os.path.samefile(source, destination)
    except OSError:  # one of them does not exist (yet)
        return False


def nul_problem(head: bytes) -> str | None:
    """What a file is, if the NUL bytes in its first bytes show it is not UTF-8 text."""
    if b"\x00" not in head:
        return None
    if head.startswith(APPLE_DOUBLE_MAGIC):
        return (
            "contains NUL bytes: it is a macOS AppleDouble file (Finder metadata, a ._ file), "
            "not a CSV. Use the file of the same name without the ._ prefix"
        )
    if _looks_utf16(head):
        return (
            "contains NUL bytes: it is UTF-16 text, not UTF-8. Re-save it as UTF-8, "
            "e.g. iconv -f UTF-16LE -t UTF-8"
        )
    return f"contains NUL bytes: a binary file, {NUL_GUESS}"


def _looks_utf16(head: bytes) -> bool:
    """BOM, or ASCII-heavy text whose every other byte is NUL."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    even, odd = head[0:512:2], head[1:512:2]
    for zeros, letters in ((odd, even), (even, odd)):
        if zeros.count(0) >= 0.7 * len(zeros) and letters.count(0) <= 0.1 * len(letters):
            return True
    return False


def prepared_file_problem(path: str, opener: Callable[..., IO] = open) -> str | None:
    """Why a file cannot be a prepared CSV at all, judged by its first bytes; else None.

    `opener` opens the path in binary mode: TFX's fileio.open for gs:// or s3:// paths.
    """
    try:
        with opener(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as error:
        return f"{path} cannot be read ({type(error).__name__}: {error})"
    nul = nul_problem(head)
    if nul:
        return f"{path} {nul}"
    first_line, newline, _ = head.partition(b"\n")
    try:
        # Without a newline in SNIFF_BYTES the line is cut, maybe inside a character.
        text = first_line.decode("utf-8", errors="strict" if newline else "replace").strip()
        columns = set(next(csv.reader([text]), []))
    except UnicodeDecodeError as error:
        return f"{path} cannot be read as UTF-8 text ({type(error).__name__}: {error})"
    except csv.Error as error:  # e.g. a lone carriage return inside the line
        return f"{path} is not a CSV file ({error})"
    if not columns & set(features.CANONICAL_COLUMNS):
        return (
            f"{path} is not a prepared CFPB file (first line: {text[:80]!r}). "
            "Prepare raw exports first: python -m data.prepare EXPORT -o FILE"
        )
    return None

"""CSV records of a raw export, each with the raw lines it was parsed from.

Given a broken quote, Python's csv module quietly merges the rows up to the next quote into
one record, or keeps a field with a stray quote in it. Strict parsing turns the first into an
error, the raw lines show the second, and giving the raw lines back from the next line that
begins a row re-reads the rows a broken record swallowed: only the broken row is lost.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from data.file_checks import NUL_GUESS, SNIFF_BYTES, ExportError, non_utf8_at, nul_problem

# The date formats of data.prepare.DATE_FORMATS (ISO maybe with a time, M/D/YYYY, MM/DD/YY).
_DATE = r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+)?|\d{1,2}/\d{1,2}/\d{2}(?:\d{2})?"
_FIELD = r'(?:"[^"\r\n]*"|[^",\r\n]*),'
# A quote that never closes would make the csv module buffer the rest of a multi-GB file.
# Real records span up to ~60 lines; a longer one is broken and its lines are read again.
MAX_RECORD_LINES = 10_000


def row_start(fields_before_date: int) -> re.Pattern[str]:
    """Matches a raw line that begins a row: that many fields, then a date received."""
    return re.compile(_FIELD * fields_before_date + rf'"?(?:{_DATE})"?,')


class _RecordTooLongError(Exception):
    pass


@dataclass
class Record:
    fields: list[str] | None  # None: strict parsing refused its quoting
    lines: list[str]  # the raw lines it was read from, line endings included


class _Lines:
    """The csv reader's input: lines given back for re-reading first, then the file's."""

    def __init__(self, source: Iterable[str], path: Path) -> None:
        self.source = iter(source)
        self.path = path
        self.given_back: collections.deque[str] = collections.deque()
        self.taken: list[str] = []
        self.number = 0  # lines of the file read so far

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            raise _RecordTooLongError
        if self.given_back:
            line = self.given_back.popleft()
        else:
            line = next(self.source)
            self.number += 1
            if "\x00" in line:  # the csv module would stop with "line contains NUL"
                raise ExportError(
                    f"{self.path}: contains NUL bytes at line {self.number}: {NUL_GUESS}"
                )
        self.taken.append(line)
        return line


class RecordReader:
    """Records of a text file opened with newline=""; read on after a broken one."""

    def __init__(self, text: Iterable[str], path: Path) -> None:
        self._lines = _Lines(text, path)
        # The csv reader starts each record afresh, also after an error, so reading goes on.
        self._csv = csv.reader(self._lines, strict=True)

    def __iter__(self) -> RecordReader:
        return self

    def __next__(self) -> Record:
        self._lines.taken = []
        try:
            fields = next(self._csv)
        except (csv.Error, _RecordTooLongError):
            fields = None
        return Record(fields, self._lines.taken)

    def reread_swallowed(self, record: Record, starts_row: re.Pattern[str]) -> bool:
        """Read again, before the rest of the file, a broken record's raw lines from the first
        after its own that begins a row: the rows it swallowed. False if there is none."""
        for at in range(1, len(record.lines)):
            if starts_row.match(record.lines[at]):
                self._lines.given_back.extendleft(reversed(record.lines[at:]))
                return True
        return False


def has_stray_quote(record: Record) -> bool:
    """True if a field holds a quote the file did not write as CSV requires: doubled, inside a
    quoted field. A lost opening quote leaves such a field (`N.A."`) that csv accepts."""
    raw = None
    for field in record.fields or ():
        if '"' in field:
            raw = raw if raw is not None else "".join(record.lines)
            if '"' + field.replace('"', '""') + '"' not in raw:
                return True
    return False


@contextlib.contextmanager
def open_export(path: Path) -> Iterator[TextIO]:
    """Open a CSV or a zip holding one CSV, as text, after checking it is not binary."""
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as raw:
            head = raw.read(SNIFF_BYTES)
        if not head.strip():
            raise ExportError(f"{path}: the file is empty")
        problem = nul_problem(head)
        if problem:
            raise ExportError(f"{path} {problem}")
    with open_bytes(path) as raw:
        yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def open_bytes(path: Path) -> Iterator[IO[bytes]]:
    """The bytes of a CSV, or of the one CSV inside a zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            if len(members) != 1:
                raise ExportError(f"{path}: expected one .csv inside the zip, found {members}")
            with archive.open(members[0]) as raw:
                yield raw
        return
    with open(path, "rb") as raw:
        yield raw


def not_utf8_message(path: Path, error: UnicodeDecodeError) -> str:
    """Where the file stops being UTF-8, found again in its bytes: the text reader decodes
    ahead of the lines it has given, so the line it is at says nothing."""
    with open_bytes(path) as raw:
        found = non_utf8_at(raw)
    where = f"byte 0x{found[1]:02x} at line {found[0]} ({found[2]})" if found else error.reason
    return (
        f"{path}: not UTF-8 text: {where}. Re-save the file as UTF-8, e.g. iconv -f CP1252 -t UTF-8"
    )

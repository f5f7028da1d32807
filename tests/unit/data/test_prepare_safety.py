"""What data.prepare refuses, fed real rows made faulty (issue 11): one line, exit 2, no output."""

from __future__ import annotations

import csv
import io
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES

from data import file_checks, prepare
from models import features
from pipeline.config import PROJECT_ROOT

NY = FIXTURES / "ny_2015_head.csv"  # header 18 names, rows 19 fields; every row labelled
SAMPLE = FIXTURES / "sample_2011_2020_head.csv"  # unnamed index column, unlabelled rows
NO_NARRATIVE = FIXTURES / "no_narrative_2013_2017_head.csv"  # CRLF, M/D/YYYY, no ids


def one_line_error(capsys, *words: str) -> str:
    """The run's stderr, checked to be one `error:` line holding every word."""
    captured = capsys.readouterr()
    assert "rows read" not in captured.out
    error = captured.err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    for word in words:
        assert word in error, (word, error)
    return error


def refuse_reading(monkeypatch) -> None:
    """Make any attempt to read an export fail the test: refusals must come first."""

    def no_reading(path):
        raise AssertionError(f"{path} was read before the output was checked")

    monkeypatch.setattr(prepare, "open_export", no_reading)


def prepared(path: Path, tmp_path: Path) -> tuple[list[tuple[str, ...]], prepare.PrepareReport]:
    output = tmp_path / "prepared" / "out.csv"
    report = prepare.prepare_cfpb_exports([path], output)
    with open(output, newline="", encoding="utf-8") as handle:
        return [tuple(row) for row in csv.reader(handle)][1:], report


def assert_every_row_accounted(report: prepare.PrepareReport) -> None:
    assert report.rows_read == report.rows_kept + sum(report.dropped.values())


# Item 2: the output is one of the inputs.


@pytest.mark.parametrize(
    "how", ["same path", "output is a symlink", "input is a symlink", "hardlink"]
)
def test_output_that_is_an_input_is_refused_before_reading(tmp_path, capsys, monkeypatch, how):
    export = tmp_path / "complaints.csv"
    export.write_bytes(NY.read_bytes())
    source = output = export
    if how == "output is a symlink":
        output = tmp_path / "link.csv"
        output.symlink_to(export)
    elif how == "input is a symlink":
        source = tmp_path / "link.csv"
        source.symlink_to(export)
    elif how == "hardlink":
        output = tmp_path / "hard.csv"
        os.link(export, output)
    refuse_reading(monkeypatch)
    assert prepare.main([str(SAMPLE), str(source), "-o", str(output)]) == 2
    one_line_error(capsys, str(output), str(source), "input")
    assert export.read_bytes() == NY.read_bytes()
    assert output.exists() and output.read_bytes() == NY.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == []


# Item 11: the output names a folder, or a path under a file.


@pytest.mark.parametrize("where", ["folder", "under a file", "two levels under a file"])
def test_output_folder_or_path_under_a_file_is_refused_before_reading(
    tmp_path, capsys, monkeypatch, where
):
    export = tmp_path / "complaints.csv"
    export.write_bytes(NY.read_bytes())
    existing = tmp_path / "existing_file.csv"
    existing.write_text("previous good output\n")
    folder = tmp_path / "out"
    folder.mkdir()
    output, blocker = {
        "folder": (folder, folder),
        "under a file": (existing / "out.csv", existing),
        "two levels under a file": (existing / "sub" / "out.csv", existing),
    }[where]
    refuse_reading(monkeypatch)
    assert prepare.main([str(export), "-o", str(output)]) == 2
    one_line_error(capsys, str(blocker))
    assert existing.read_text() == "previous good output\n"
    assert list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "complaints.csv",
        "existing_file.csv",
        "out",
    ]


# Item 3: a column the command reads appears twice in the header.


def with_empty_narrative_column_first(source: Path, destination: Path) -> Path:
    """The export with an extra, empty "Consumer complaint narrative" column before the real one."""
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    at = header.index("Date received") + 1
    offset = len(rows[1]) - len(header)  # the nameless index column of some exports
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header[:at] + ["Consumer complaint narrative"] + header[at:])
    writer.writerows(row[: at + offset] + [""] + row[at + offset :] for row in rows[1:])
    destination.write_text(out.getvalue(), encoding="utf-8")
    return destination


@pytest.mark.parametrize("source", [NY, SAMPLE], ids=["ny", "sample"])
def test_duplicate_column_names_are_refused(tmp_path, capsys, source):
    export = with_empty_narrative_column_first(source, tmp_path / "complaints.csv")
    output = tmp_path / "out.csv"
    output.write_text("previous good output\n")
    assert prepare.main([str(export), "-o", str(output)]) == 2
    one_line_error(capsys, str(export), "Consumer complaint narrative", "more than once")
    assert output.read_text() == "previous good output\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_duplicate_unread_columns_are_ignored(tmp_path):
    text = NY.read_text(encoding="utf-8").replace(
        "Consumer consent provided?,", "Company public response,", 1
    )
    export = tmp_path / "complaints.csv"
    export.write_text(text, encoding="utf-8")
    rows, report = prepared(export, tmp_path)
    assert report.rows_kept == len(rows) == 40


# Item 6: complaint ids far beyond the real range.

HUGE_IDS = ["8000000000", "40000000000", "98765432109876543210"]


def with_complaint_ids(source: Path, destination: Path, ids: list[str]) -> Path:
    """The export with its first len(ids) complaint ids replaced by `ids`."""
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    for row, complaint_id in zip(rows[1:], ids, strict=False):
        row[-1] = complaint_id  # Complaint ID is the last column of these exports
    with open(destination, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return destination


def _limit_memory() -> None:
    limit = 1 << 30  # 1 GiB of address space: ample for this file, not for a bitmap by value
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_huge_complaint_ids_are_kept_and_deduplicated_in_bounded_memory(tmp_path):
    # Each huge id again (one with leading zeros) further down: those copies are duplicates.
    ids = HUGE_IDS + ["1", "2", "3"] + HUGE_IDS[:2] + ["0" + HUGE_IDS[2]]
    export = with_complaint_ids(NY, tmp_path / "complaints.csv", ids)
    output = tmp_path / "out.csv"
    done = subprocess.run(
        [sys.executable, "-m", "data.prepare", str(export), "-o", str(output)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        preexec_fn=_limit_memory,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "duplicate complaint id: 3" in done.stdout
    with open(output, newline="", encoding="utf-8") as handle:
        kept = [row[features.ID_KEY] for row in csv.DictReader(handle)]
    assert kept[:6] == HUGE_IDS + ["1", "2", "3"]
    assert len(kept) == 37 and len(set(kept)) == 37


def test_duplicate_ids_need_memory_by_rows_not_by_id_value():
    seen = prepare.SeenIds()
    ids = ["1" + "0" * 30, "8000000000", "40000000000", "5", "9" * 5000]
    assert all(seen.add(complaint_id) for complaint_id in ids)
    assert not any(seen.add(complaint_id) for complaint_id in ids)
    assert not seen.add("000" + ids[1])  # the same number
    assert seen.nbytes() < 4 << 20


def test_non_numeric_complaint_id_is_dropped_as_malformed(tmp_path):
    export = with_complaint_ids(NY, tmp_path / "complaints.csv", ["12a4", "No"])
    rows, report = prepared(export, tmp_path)
    assert report.dropped["malformed row (Complaint ID not a number)"] == 2
    assert report.rows_read == 40 and len(rows) == 38
    assert_every_row_accounted(report)


# Item 9: NUL bytes (UTF-16 without BOM, a macOS AppleDouble "._" file).


def apple_double() -> bytes:
    """A macOS AppleDouble file as Finder leaves beside a copied complaints.csv."""
    header = b"\x00\x05\x16\x07" + b"\x00\x02\x00\x00" + b"Mac OS X".ljust(16) + b"\x00\x02"
    entries = b"\x00\x00\x00\x09\x00\x00\x00\x32\x00\x00\x0e\xb0"  # Finder info
    entries += b"\x00\x00\x00\x02\x00\x00\x0e\xe2\x00\x00\x01\x1e"  # resource fork
    body = b"\x00" * 32 + b"ATTR" + b"\x00" * 30
    body += b"com.apple.quarantine\x00q/0081;6571a2c1;Safari;"
    return (header + entries + body).ljust(4096, b"\x00")


def utf16_without_bom(path: Path) -> bytes:
    return path.read_text(encoding="utf-8").encode("utf-16-le")


@pytest.fixture
def prepared_ny(tmp_path) -> Path:
    output = tmp_path / "prepared" / "complaints.csv"
    prepare.prepare_cfpb_exports([NY], output)
    return output


@pytest.mark.parametrize(
    "kind, hint", [("utf-16", "UTF-16"), ("apple-double", "._"), ("binary", "UTF-16? a macOS ._")]
)
def test_file_check_names_nul_bytes_instead_of_raising(tmp_path, prepared_ny, kind, hint):
    path = tmp_path / ("._complaints.csv" if kind == "apple-double" else "complaints.csv")
    content = {
        "utf-16": utf16_without_bom(prepared_ny),
        "apple-double": apple_double(),
        "binary": prepared_ny.read_bytes()[:100] + b"\x00\x17\x80" * 10,
    }[kind]
    path.write_bytes(content)
    problem = file_checks.prepared_file_problem(str(path))
    assert problem is not None and str(path) in problem and "NUL" in problem and hint in problem


def test_file_check_still_accepts_a_prepared_file(prepared_ny):
    assert file_checks.prepared_file_problem(str(prepared_ny)) is None


@pytest.mark.parametrize(
    "kind, hint",
    [("utf-16", "UTF-16"), ("apple-double", "AppleDouble"), ("nul at line 66", "line 66")],
)
def test_raw_export_with_nul_bytes_is_refused_in_one_line(tmp_path, capsys, kind, hint):
    path = tmp_path / ("._complaints.csv" if kind == "apple-double" else "complaints.csv")
    if kind == "utf-16":
        path.write_bytes(utf16_without_bom(NY))
    elif kind == "apple-double":
        path.write_bytes(apple_double())
    else:  # past the 8 KB sniffed at the start: found while reading
        lines = NY.read_bytes().split(b"\n")
        lines[65] = lines[65].replace(b",Web,", b",W\x00eb,")
        path.write_bytes(b"\n".join(lines))
    output = tmp_path / "out.csv"
    assert prepare.main([str(path), "-o", str(output)]) == 2
    one_line_error(capsys, str(path), "NUL", hint)
    assert not output.exists()


# Broken quotes: every row read is kept or counted once; a garbled row is never kept.


def quote_offsets(text: str) -> tuple[list[int], list[int]]:
    """Offsets of the opening and of the closing quote of every quoted field in a CSV text."""
    opening: list[int] = []
    closing: list[int] = []
    at, quoted, field_start = 0, False, True
    while at < len(text):
        char = text[at]
        if quoted and char == '"':
            if text[at + 1 : at + 2] == '"':  # an escaped quote inside the field
                at += 2
                continue
            closing.append(at)
            quoted = False
        elif not quoted and char == '"' and field_start:
            opening.append(at)
            quoted = True
        field_start = not quoted and char in ",\r\n"
        at += 1
    return opening, closing


@pytest.mark.parametrize("which", ["closing", "opening"])
@pytest.mark.parametrize("source", [NY, SAMPLE, NO_NARRATIVE], ids=["ny", "sample", "no_narr"])
def test_a_broken_quote_costs_only_its_own_row_and_every_row_is_counted(tmp_path, source, which):
    intact_rows, intact = prepared(source, tmp_path)
    text = source.read_bytes().decode("utf-8")
    opening, closing = quote_offsets(text)
    offsets = closing if which == "closing" else opening
    assert len(offsets) > 30
    variant = tmp_path / "broken.csv"
    for at in offsets:
        variant.write_bytes((text[:at] + text[at + 1 :]).encode("utf-8"))
        rows, report = prepared(variant, tmp_path)
        context = (at, text[max(at - 40, 0) : at + 40], report.summary())
        assert report.rows_read == intact.rows_read, context
        assert_every_row_accounted(report)
        assert set(rows) <= set(intact_rows), context  # no garbled row kept
        malformed = {r: n for r, n in report.dropped.items() if r.startswith("malformed")}
        assert sum(malformed.values()) == 1, context
        assert len(rows) >= len(intact_rows) - 1, context


def test_unclosed_quote_in_a_company_name(tmp_path):
    """The issue's case: "NRA Group, LLC" loses its closing quote; rows below must survive."""
    text = NO_NARRATIVE.read_bytes().decode("utf-8")
    assert text.count('"NRA Group, LLC"') == 1
    export = tmp_path / "complaints.csv"
    export.write_bytes(text.replace('"NRA Group, LLC"', '"NRA Group, LLC').encode("utf-8"))
    rows, report = prepared(export, tmp_path)
    assert report.rows_read == 60
    assert report.dropped == {
        "malformed row (broken quoting)": 1,
        "no label (Consumer disputed? empty)": 2,
    }
    assert len(rows) == 57
    assert not any('"' in value for row in rows for value in row)


def test_a_quote_that_never_closes_does_not_buffer_the_rest_of_the_file(tmp_path, monkeypatch):
    """Past MAX_RECORD_LINES a record counts as broken and its lines are read again."""
    from data import records

    longest: list[int] = []

    class MeasuredRecord(records.Record):
        def __init__(self, fields: list[str] | None, lines: list[str]) -> None:
            super().__init__(fields, lines)
            longest.append(len(lines))

    monkeypatch.setattr(records, "MAX_RECORD_LINES", 3)
    monkeypatch.setattr(records, "Record", MeasuredRecord)
    text = NO_NARRATIVE.read_bytes().decode("utf-8")
    # The closing quote followed by the most lines without a quote: the field runs on.
    at = max(quote_offsets(text)[1], key=lambda i: text.count("\n", i, text.find('"', i + 1)))
    assert text.count("\n", at, text.find('"', at + 1)) > 3
    export = tmp_path / "complaints.csv"
    export.write_bytes((text[:at] + text[at + 1 :]).encode("utf-8"))
    rows, report = prepared(export, tmp_path)
    assert max(longest) == 3
    assert report.rows_read == 60
    assert report.dropped["malformed row (broken quoting)"] == 1
    assert_every_row_accounted(report)
    assert len(rows) >= 57


def test_complaint_ids_saved_as_floats_are_kept(tmp_path):
    """A spreadsheet re-save writes 1234.0: every row was dropped as malformed (review)."""
    text = NY.read_text(encoding="utf-8")
    header, *lines = text.split("\n")
    resaved = tmp_path / "resaved.csv"
    ids = prepare.prepare_cfpb_exports([NY], tmp_path / "a.csv")
    original = (tmp_path / "a.csv").read_text(encoding="utf-8")
    id_column = next(
        i for i, name in enumerate(next(csv.reader([header]))) if name == "Complaint ID"
    )
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows[1:]:
        if len(row) > id_column + 1 and row[id_column + 1].isdigit():
            row[id_column + 1] += ".0"  # rows carry one more field than the header (index)
    with open(resaved, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    prepare.prepare_cfpb_exports([resaved], tmp_path / "b.csv")
    assert (tmp_path / "b.csv").read_text(encoding="utf-8") == original
    assert ids.rows_kept > 0

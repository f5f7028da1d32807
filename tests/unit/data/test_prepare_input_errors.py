"""data.prepare's answers to real exports made faulty: a bad byte, -o DIR/, a ';' delimiter."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES

from data import file_checks, prepare

NY = FIXTURES / "ny_2015_head.csv"  # header 18 names, rows 19 fields; every row labelled
SAMPLE = FIXTURES / "sample_2011_2020_head.csv"  # multi-line narratives, LF line endings
NO_NARRATIVE = FIXTURES / "no_narrative_2013_2017_head.csv"  # CRLF line endings


def one_line_error(capsys) -> str:
    """The run's stderr, checked to be a single `error:` line, without its newline."""
    captured = capsys.readouterr()
    assert "rows read" not in captured.out
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err.rstrip("\n")


def first_multi_line_record(path: Path) -> tuple[int, int]:
    """The physical lines (first, last) of the first record whose narrative spans lines."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        last = 0
        for _ in reader:
            first, last = last + 1, reader.line_num
            if last > first:
                return first, last
    raise AssertionError(f"{path} has no multi-line record")


def with_bad_byte(source: Path, line: int) -> bytes:
    """The export with the first letter of physical line `line` (1-based) made b"\\xff"."""
    lines = source.read_bytes().split(b"\n")
    target = lines[line - 1]
    at = next(i for i, byte in enumerate(target) if chr(byte).isalpha())
    lines[line - 1] = target[:at] + b"\xff" + target[at + 1 :]
    return b"\n".join(lines)


def bad_byte_error(path: Path, line: int) -> str:
    return (
        f"error: {path}: not UTF-8 text: byte 0xff at line {line} (invalid start byte). "
        "Re-save the file as UTF-8, e.g. iconv -f CP1252 -t UTF-8"
    )


NARRATIVE_FIRST, NARRATIVE_LAST = first_multi_line_record(SAMPLE)  # lines 3..11


@pytest.mark.parametrize(
    "source, line",
    [
        (SAMPLE, 1),  # the header
        (SAMPLE, 2),  # the first row
        (SAMPLE, NARRATIVE_FIRST + 2),  # inside a narrative that spans lines
        (SAMPLE, NARRATIVE_LAST + 1),  # the row after that narrative
        (SAMPLE, SAMPLE.read_bytes().count(b"\n")),  # the last line, far past the first 8 KB
        (NO_NARRATIVE, 40),  # CRLF line endings
    ],
    ids=["header", "line 2", "in narrative", "after narrative", "last line", "crlf"],
)
def test_a_bad_byte_is_reported_at_its_physical_line(tmp_path, capsys, source, line):
    assert NARRATIVE_LAST > NARRATIVE_FIRST + 2  # the fixture's narrative spans lines
    path = tmp_path / "complaints.csv"
    path.write_bytes(with_bad_byte(source, line))
    output = tmp_path / "out.csv"
    assert prepare.main([str(path), "-o", str(output)]) == 2
    assert one_line_error(capsys) == bad_byte_error(path, line)
    assert not output.exists()


def test_a_bad_byte_inside_the_cfpb_zip_is_reported_at_its_line(tmp_path, capsys):
    line = NARRATIVE_LAST + 1
    archive = tmp_path / "complaints.csv.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("complaints.csv", with_bad_byte(SAMPLE, line))
    assert prepare.main([str(archive), "-o", str(tmp_path / "out.csv")]) == 2
    assert one_line_error(capsys) == bad_byte_error(archive, line)


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r"], ids=["crlf", "lone cr"])
def test_bad_byte_line_is_the_same_whatever_the_read_size(line_end):
    """Reads cut a \\r\\n and a 2-byte "\u00e9" in two: neither may shift the line."""
    text = with_bad_byte(NO_NARRATIVE, 40).replace(b"\r\n", line_end)
    text = text.replace(b"Bank of America", "Banqu\u00e9".encode(), 3)  # lines before 40
    assert text.count("\u00e9".encode()) == 3
    for size in (1, 2, 3, 7, 8192):
        found = file_checks.non_utf8_at(io.BytesIO(text), chunk_size=size)
        assert found == (40, 0xFF, "invalid start byte"), size


# -o with a trailing slash names a folder, as an existing folder does: refused the same way.


@pytest.mark.parametrize("name", ["newdir/", "new/nested/"])
def test_output_with_a_trailing_slash_is_refused_as_a_folder(tmp_path, capsys, monkeypatch, name):
    def no_reading(path):
        raise AssertionError(f"{path} was read before the output was checked")

    monkeypatch.setattr(prepare, "open_export", no_reading)
    output = f"{tmp_path}/{name}"
    folder = Path(output)
    assert prepare.main([str(NY), "-o", output]) == 2
    assert one_line_error(capsys) == (
        f"error: -o {output} is a folder; name the file to write, "
        f"e.g. -o {folder / 'complaints.csv'}"
    )
    assert list(tmp_path.iterdir()) == []  # neither a file nor a folder made


def test_existing_folder_and_trailing_slash_get_the_same_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    assert prepare.main([str(NY), "-o", "out"]) == 2
    existing = one_line_error(capsys)
    (tmp_path / "out").rmdir()
    assert prepare.main([str(NY), "-o", "out/"]) == 2
    assert one_line_error(capsys) == existing.replace("-o out ", "-o out/ ")
    assert list(tmp_path.iterdir()) == []


# An export saved with ';' or tabs between columns (a spreadsheet's "CSV" in some locales).


def rewritten(source: Path, delimiter: str, quoting: int) -> bytes:
    with open(source, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    text = io.StringIO(newline="")
    csv.writer(text, delimiter=delimiter, quoting=quoting, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode("utf-8")


@pytest.mark.parametrize(
    "source, delimiter, quoting, shown",
    [
        (NY, ";", csv.QUOTE_MINIMAL, "';'"),
        (SAMPLE, ";", csv.QUOTE_ALL, "';'"),  # quoted names: the header does not even parse
        (NO_NARRATIVE, "\t", csv.QUOTE_MINIMAL, "a tab"),
    ],
    ids=["semicolon", "semicolon quoted", "tab"],
)
def test_a_non_comma_delimiter_is_named(tmp_path, capsys, source, delimiter, quoting, shown):
    path = tmp_path / "complaints.csv"
    path.write_bytes(rewritten(source, delimiter, quoting))
    output = tmp_path / "out.csv"
    assert prepare.main([str(path), "-o", str(output)]) == 2
    assert one_line_error(capsys) == (
        f"error: {path}: not comma-separated: the delimiter looks like {shown} (the header "
        "splits on it into the CFPB's column names). The file must be comma-separated: "
        "re-export it as CSV with commas"
    )
    assert not output.exists()

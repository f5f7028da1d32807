"""Data preparation on real CFPB rows (tests/fixtures holds heads of the real extracts)."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from conftest import FIXTURES

from data import prepare
from models import features

NY = FIXTURES / "ny_2015_head.csv"  # header 18 names, rows 19 fields; every row labelled
SAMPLE = FIXTURES / "sample_2011_2020_head.csv"  # unnamed index column, unlabelled rows
NO_NARRATIVE = FIXTURES / "no_narrative_2013_2017_head.csv"  # CRLF, M/D/YYYY, 4-digit ZIPs


def prepared_rows(tmp_path: Path, *sources: Path) -> tuple[list[dict], prepare.PrepareReport]:
    output = tmp_path / "out.csv"
    report = prepare.prepare_cfpb_exports(list(sources), output)
    with open(output, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == features.CANONICAL_COLUMNS
        return list(reader), report


def test_header_without_index_name_does_not_shift_columns(tmp_path):
    rows, report = prepared_rows(tmp_path, NY)
    assert report.rows_read == report.rows_kept == 40
    first = rows[0]
    assert first["date_received"] == "2015-10-19"
    assert first["product"] == "Credit card"
    assert first["issue"] == "Customer service / Customer relations"
    assert first["state"] == "NY"
    assert first["submitted_via"] == "Web"
    assert first["consumer_complaint_narrative"].startswith("Recently I contacted my credit card")
    assert all(row["complaint_id"].isdigit() for row in rows)


def test_named_empty_index_column_and_unlabelled_rows(tmp_path):
    rows, report = prepared_rows(tmp_path, SAMPLE)
    assert report.rows_read == 80
    assert report.rows_kept + report.dropped["no label (Consumer disputed? empty)"] == 80
    assert report.rows_kept == len(rows) > 0
    assert {row["consumer_disputed"] for row in rows} <= {"0", "1"}
    assert rows[0]["date_received"] == "2014-07-09"
    assert rows[0]["company"] == "WELLS FARGO & COMPANY"
    assert rows[0]["complaint_id"] == "930149"


def test_multi_line_narratives_stay_whole(tmp_path):
    rows, _ = prepared_rows(tmp_path, SAMPLE)
    multi_line = [row for row in rows if "\n" in row["consumer_complaint_narrative"]]
    assert multi_line, "the fixture has multi-line narratives"
    assert all("\r" not in row["consumer_complaint_narrative"] for row in rows)
    assert all(row["zip_code"] in ("",) or len(row["zip_code"]) == 5 for row in rows)


def test_crlf_slash_dates_lost_zip_zeros_and_missing_columns(tmp_path):
    assert b"\r\n" in NO_NARRATIVE.read_bytes()
    rows, report = prepared_rows(tmp_path, NO_NARRATIVE)
    assert (report.rows_read, report.rows_kept) == (60, 58)
    assert report.dropped == {"no label (Consumer disputed? empty)": 2}
    assert rows[0]["date_received"] == "2013-07-29"
    franklin = next(row for row in rows if row["company"] == "Franklin Credit Management")
    assert franklin["zip_code"] == "06106"  # "6106" in the export
    assert all(row["consumer_complaint_narrative"] == "" for row in rows)
    assert all(row["complaint_id"] == "" for row in rows)
    assert all(not value.endswith("\r") for row in rows for value in row.values())


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2015-03-19", "2015-03-19"),
        ("7/29/2013", "2013-07-29"),
        ("03/19/15", "2015-03-19"),
        ("2015-03-19T00:00:00", "2015-03-19"),
        ("19.03.2015", None),
        ("", None),
    ],
)
def test_normalize_date(raw, expected):
    assert prepare.normalize_date(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("124XX", "124XX"),
        ("6106", "06106"),
        ("501", "00501"),
        ("10065", "10065"),
        ("10065-1234", "10065"),
        ("", ""),
        ("N/A", ""),
        ("12", ""),
    ],
)
def test_normalize_zip(raw, expected):
    assert prepare.normalize_zip(raw) == expected


def test_label_values_and_drop_reasons(tmp_path):
    source = tmp_path / "labels.csv"
    header = ",".join(prepare.REQUIRED_CFPB_COLUMNS)
    lines = [header]
    for date, label in [
        ("2015-01-01", "Yes"),
        ("2015-01-02", "No"),
        ("2015-01-03", ""),
        ("2015-01-04", "N/A"),
        ("2015-01-05", "Maybe"),
        ("someday", "Yes"),
    ]:
        values = {name: "x" for name in prepare.REQUIRED_CFPB_COLUMNS}
        values.update({"Date received": date, "Consumer disputed?": label})
        lines.append(",".join(values[name] for name in prepare.REQUIRED_CFPB_COLUMNS))
    source.write_text("\n".join(lines) + "\n")
    rows, report = prepared_rows(tmp_path, source)
    assert [row["consumer_disputed"] for row in rows] == ["1", "0"]
    assert report.rows_read == 6
    assert report.dropped == {
        "no label (Consumer disputed? empty)": 2,
        "label not Yes/No": 1,
        "unparseable Date received": 1,
    }


def test_duplicate_complaint_ids_across_exports_are_dropped(tmp_path):
    rows, report = prepared_rows(tmp_path, NY, NY)
    assert len(rows) == 40
    assert report.dropped["duplicate complaint id"] == 40


def test_output_is_deterministic(tmp_path):
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    prepare.prepare_cfpb_exports([NY, SAMPLE, NO_NARRATIVE], first)
    prepare.prepare_cfpb_exports([NY, SAMPLE, NO_NARRATIVE], second)
    assert first.read_bytes() == second.read_bytes()


def test_reads_the_cfpb_zip_archive(tmp_path):
    archive = tmp_path / "complaints.csv.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(SAMPLE, "complaints.csv")
    zipped_rows, _ = prepared_rows(tmp_path, archive)
    plain_rows, _ = prepared_rows(tmp_path, SAMPLE)
    assert zipped_rows == plain_rows


BAD_INPUTS = {
    "empty": (b"", "empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10, "binary"),
    "not_cfpb": (b"name,age\nann,3\n", "missing column(s) Date received"),
    "no_labelled_rows": (
        (",".join(prepare.REQUIRED_CFPB_COLUMNS) + "\n" + "," * 13 + "\n").encode(),
        "no labelled rows",
    ),
    "latin1": (
        (",".join(prepare.REQUIRED_CFPB_COLUMNS) + "\n").encode() + "caf\u00e9,".encode("latin-1"),
        "not UTF-8",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, capsys, case):
    content, message = BAD_INPUTS[case]
    source = tmp_path / f"{case}.csv"
    source.write_bytes(content)
    output = tmp_path / "out" / "complaints.csv"
    assert prepare.main([str(source), "-o", str(output)]) == 2
    error = capsys.readouterr().err
    assert message in error and str(source) in error
    assert not output.exists()
    assert list(output.parent.iterdir()) == []  # no partial file either


def test_missing_file_and_existing_output_kept(tmp_path, capsys):
    output = tmp_path / "complaints.csv"
    output.write_text("previous good output\n")
    assert prepare.main([str(tmp_path / "nope.csv"), "-o", str(output)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert output.read_text() == "previous good output\n"


def test_cli_prints_what_it_did(tmp_path, capsys):
    output = tmp_path / "complaints.csv"
    assert prepare.main([str(SAMPLE), str(NO_NARRATIVE), "-o", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "rows read: 140" in printed
    assert "no label (Consumer disputed? empty)" in printed
    assert f"wrote {output}" in printed


def test_tags_are_kept_and_empty_where_the_export_has_none(raw_rows):
    """The CFPB's Tags column (issue 16.2): kept as is; '' for untagged rows and old exports."""
    tags = {row[features.TAGS_KEY] for row in raw_rows}
    assert {"Older American", "Servicemember", ""} <= tags
    assert tags <= {"Older American", "Servicemember", "Older American, Servicemember", ""}
    assert list(raw_rows[0]) == list(features.CANONICAL_COLUMNS)


def test_an_export_without_tags_gets_empty_tags(tmp_path):
    output = tmp_path / "out.csv"
    prepare.prepare_cfpb_exports([FIXTURES / "no_narrative_2013_2017_head.csv"], output)
    with open(output, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {row[features.TAGS_KEY] for row in rows} == {""}

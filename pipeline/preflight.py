"""What is wrong with a config, found before anything heavy starts (no TensorFlow import).

Every runner checks its flags with these and stops with one line per problem and exit code 2:
a run that can never succeed (an impossible threshold, an output folder it cannot write, a
database it cannot reach, unreadable data) should not first spend minutes importing and
computing. The local runners check the data after taking their lock (runners/local_run.py), the
Kubeflow runner only what the spec is built from, the Airflow DAG file the settings.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv

from data.file_checks import prepared_file_problem
from models.features import LABEL_KEY, integer_label
from pipeline import names
from pipeline.components.fairness import NO_VALUE, parse_groups
from pipeline.config import MYSQL_PASSWORD_ENV, SPAN_TOKEN, PipelineConfig, flag_name, is_uri

MYSQL_CONNECT_SECONDS = 3.0
ACCESS_DENIED, CANNOT_CONNECT = 1045, 2003  # MySQL's client error codes


def span_files(config: PipelineConfig) -> dict[int, list[Path]]:
    """{span: its files} of the local files matching a --input-pattern with {SPAN}."""
    data_dir = Path(config.data_dir)
    span_of = re.compile(
        fnmatch.translate(config.input_pattern).replace(re.escape(SPAN_TOKEN), r"([0-9]+)")
    )
    found: dict[int, list[Path]] = {}
    for path in sorted(data_dir.glob(config.input_pattern.replace(SPAN_TOKEN, "*"))):
        match = span_of.match(str(path.relative_to(data_dir)))
        if match:
            found.setdefault(int(match.group(1)), []).append(path)
    return dict(sorted(found.items()))


def input_files(config: PipelineConfig) -> list[Path]:
    """The local files a run reads: those matching --input-pattern, of one span (--span, else
    the newest) when the pattern has {SPAN}."""
    if SPAN_TOKEN not in config.input_pattern:
        return sorted(Path(config.data_dir).glob(config.input_pattern))
    spans = span_files(config)
    return spans.get(config.span or max(spans, default=0), [])


def data_problems(config: PipelineConfig) -> list[str]:
    problems = []
    if not is_uri(config.data_dir):  # remote data is checked where it is read
        data_dir = Path(config.data_dir)
        files = input_files(config) if data_dir.is_dir() else []
        if not data_dir.is_dir():
            problems.append(f"--data-dir {config.data_dir} is not a folder")
        elif not files and config.span:
            problems.append(
                f"--span {config.span}: no file under {config.data_dir} matches "
                + config.input_pattern.replace(SPAN_TOKEN, str(config.span))
            )
        elif not files:
            problems.append(
                f"--data-dir {config.data_dir} holds no file matching {config.input_pattern}; "
                "prepare a CFPB export with: python -m data.prepare EXPORT -o DIR/complaints.csv"
            )
        else:
            file_problems = list(filter(None, map(prepared_file_problem, map(str, files))))
            problems += file_problems or filter(None, [label_type_problem(files)])
            problems += [] if file_problems else fairness_gate_problems(config, files)
    elif config.fairness_gate:
        problems += fairness_gate_problems(config, [])
    if not is_uri(config.schema_file) and not Path(config.schema_file).is_file():
        problems.append(f"--schema-file {config.schema_file} does not exist")
    return problems


def _first_nul_line(path: Path) -> int | None:
    """The line of the file's first NUL byte, if any: no CSV reader here would name it."""
    with open(path, "rb") as handle:
        line = 1
        for chunk in iter(lambda: handle.read(4 << 20), b""):
            if (at := chunk.find(b"\x00")) >= 0:
                return line + chunk.count(b"\n", 0, at)
            line += chunk.count(b"\n")
    return None


def _first_label_word(path: Path) -> tuple[bool, tuple[int, str] | None]:
    """Whether the file has integer labels, and the row and text of its first word label.

    pyarrow reads only the label column: a Python csv reader took 3 s at 422k rows, on every
    run, cached ones too.
    """
    options = {
        "parse_options": arrow_csv.ParseOptions(newlines_in_values=True),
        "convert_options": arrow_csv.ConvertOptions(
            include_columns=[LABEL_KEY],
            include_missing_columns=True,
            column_types={LABEL_KEY: pa.string()},
        ),
    }
    has_integers, word, first_row = False, None, 2  # row 2: the first after the header
    with arrow_csv.open_csv(path, **options) as reader:
        for batch in reader:
            labels = pc.utf8_trim_whitespace(batch.column(0))
            distinct = [text for text in pc.unique(labels).to_pylist() if text]
            words = [text for text in distinct if integer_label(text) is None]
            has_integers |= len(words) < len(distinct)
            if words and word is None:
                row = min(pc.index(labels, text).as_py() for text in words)
                word = (first_row + row, labels[row].as_py())
            if has_integers and word:
                break  # mixed within the file: no need to read on
            first_row += batch.num_rows
    return has_integers, word


def label_type_problem(files: list[Path]) -> str | None:
    """Labels must be integers in every file, or words in every file.

    Integer labels in one file and words ("Yes") in another give examples whose label feature
    has two types, and StatisticsGen fails on them with an internal error. All-word labels are
    left to the data gate, which names them against the schema.
    """
    first_word: dict[Path, tuple[int, str]] = {}
    with_integers: list[Path] = []
    for path in files:
        if (line := _first_nul_line(path)) is not None:
            return f"{path}, line {line}: not a readable CSV (it holds a NUL byte)"
        try:
            has_integers, word = _first_label_word(path)
        except pa.ArrowInvalid as error:  # e.g. a row with too many fields
            return f"{path}: not a readable CSV ({error})"
        if has_integers:
            with_integers.append(path)
        if word:
            first_word[path] = word
    if not first_word or not with_integers:
        return None
    path, (row, word) = next(iter(first_word.items()))
    return (
        f"{path}, row {row}: {LABEL_KEY} is {word!r}, while {with_integers[0]} has 0/1 "
        "labels; every file needs 0/1 labels (prepare raw exports with python -m data.prepare)"
    )


def fairness_gate_problems(config: PipelineConfig, files: list[Path]) -> list[str]:
    """Each --fairness-gate group must be a slice the Evaluator makes, of a value the data has.

    A group that matches nothing is never judged, so a typo would silently bless every model.
    Remote data (files empty) is checked for the slice feature only.
    """
    problems, present = [], {}
    groups = [group.partition(": ")[::2] for group in parse_groups(config.fairness_gate)]
    for key, value in groups:
        if key not in names.SLICE_KEYS:
            problems.append(
                f"--fairness-gate: {key}: {value!r} is not a group the Evaluator reports; name "
                f"groups as '<feature>: <value>' with a feature of {', '.join(names.SLICE_KEYS)}"
            )
        elif files and key not in present:
            present[key] = _distinct_values(files, key)
    for key, value in groups:
        values = present.get(key)
        if values is not None and (value if value != NO_VALUE else "") not in values:
            listed = "; ".join(f"{key}: {v or NO_VALUE}" for v in sorted(values)[:20])
            problems.append(
                f"--fairness-gate: no complaint in {config.data_dir} is in group "
                f"'{key}: {value}'; its groups are: {listed}"
            )
    return problems


def _distinct_values(files: list[Path], column: str) -> set[str]:
    """The distinct values of one column over the files (pyarrow reads that column only)."""
    options = arrow_csv.ConvertOptions(
        include_columns=[column], include_missing_columns=True, column_types={column: pa.string()}
    )
    values: set[str] = set()
    for path in files:
        parse = arrow_csv.ParseOptions(newlines_in_values=True)
        with arrow_csv.open_csv(path, parse_options=parse, convert_options=options) as reader:
            for batch in reader:
                values.update(v or "" for v in pc.unique(batch.column(0)).to_pylist())
    return values


def setting_problems(config: PipelineConfig) -> list[str]:
    """Settings under which no run could ever train, evaluate or bless a model: each numeric
    one outside its Range (nan, infinities, negatives, absurd sizes), and the span's rules."""
    problems = []
    for setting in dataclasses.fields(PipelineConfig):
        allowed = setting.metadata.get("bounds")
        if allowed and (problem := allowed.problem(getattr(config, setting.name))):
            problems.append(f"{flag_name(setting.name)} {problem}")
    if config.span and SPAN_TOKEN not in config.input_pattern:
        problems.append(f"--span needs {SPAN_TOKEN} in --input-pattern")
    return problems


def output_problems(config: PipelineConfig) -> list[str]:
    """A local output folder must be creatable and writable (remote ones are checked there)."""
    if is_uri(config.output_dir):
        return []
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=config.output_dir):
            pass
    except OSError as error:
        return [f"--output-dir {config.output_dir} is not writable: {error.strerror or error}"]
    return []


def store_problems(config: PipelineConfig) -> list[str]:
    """MLMD on MySQL: the server must answer on its port, as MySQL, and take the credentials.

    MLMD itself says only "mysql_real_connect failed" (after retrying for 17 s) for a port that
    is not MySQL or a wrong password, so a MySQL client asks first and names the cause.
    """
    if not config.mysql_host:
        return []
    import pymysql  # only for MySQL stores

    where = f"MySQL for MLMD at {config.mysql_host}:{config.mysql_port}"
    try:
        pymysql.connect(
            host=config.mysql_host,
            port=config.mysql_port,
            user=config.mysql_user,
            password=os.environ.get(MYSQL_PASSWORD_ENV, ""),
            connect_timeout=MYSQL_CONNECT_SECONDS,
            read_timeout=MYSQL_CONNECT_SECONDS,
        ).close()
    except pymysql.err.OperationalError as error:
        code, reason = (list(error.args) + [""])[:2]
        if code == ACCESS_DENIED:
            return [
                f"{where} refused user {config.mysql_user!r} ({reason}); check --mysql-user "
                f"and ${MYSQL_PASSWORD_ENV}"
            ]
        if code == CANNOT_CONNECT:
            return [
                f"cannot reach {where} ({reason}); start the server or fix "
                "--mysql-host/--mysql-port"
            ]
        return [f"{where} does not answer as a MySQL server ({reason}); check --mysql-port"]
    except Exception as error:  # noqa: BLE001 (a server speaking another protocol)
        return [
            f"{where} does not answer as a MySQL server ({type(error).__name__}: {error}); "
            "check --mysql-port"
        ]
    return []

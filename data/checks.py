"""Refusals made before any row is read: where the output goes, and files that are not text.

Each check returns a one-line reason (or None), never raises: data.prepare prints it and
exits 2.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path


class ExportError(ValueError):
    """The input is not a CFPB export this command can read, or the output cannot be written."""


def output_problem(sources: Sequence[Path], destination: Path) -> str | None:
    """Why the prepared CSV cannot be written to `destination`; None if it can.

    Judged from paths alone, so a bad -o is refused before a multi-GB export is read.
    """
    for source in sources:
        if _same_file(source, destination):
            return (
                f"-o {destination} is the input {source}: writing it would replace the raw "
                "export. Choose another output file"
            )
    if destination.is_dir():
        return (
            f"-o {destination} is a folder; name the file to write, "
            f"e.g. -o {destination / 'complaints.csv'}"
        )
    for parent in destination.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"-o {destination} cannot be created: {parent} is a file, not a folder"
            break
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

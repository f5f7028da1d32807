"""Reading artifact files: plain file calls for local paths, TFX's file system layer for URIs.

TFX's `fileio` imports TensorFlow (seconds) to reach gs:// and s3://; a report of a finished
local run, or a rerun the runner finds unchanged, should not pay for it.
"""

from __future__ import annotations

import os


def is_remote(path: str) -> bool:
    return "://" in path


def listdir(path: str) -> list[str]:
    if is_remote(path):
        from tfx.dsl.io import fileio

        return fileio.listdir(path)
    return os.listdir(path)


def exists(path: str) -> bool:
    if is_remote(path):
        from tfx.dsl.io import fileio

        return fileio.exists(path)
    return os.path.exists(path)


def read(path: str, mode: str = "r") -> str | bytes:
    """A file's content: text with mode "r", bytes with "rb"."""
    if is_remote(path):
        from tfx.dsl.io import fileio

        with fileio.open(path, mode) as handle:
            return handle.read()
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
        return handle.read()

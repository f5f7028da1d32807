"""Write a file whole or not at all; hold a lock file while one process changes files."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(destination: Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Yield a temporary file beside `destination`; it replaces `destination` only if the
    block finishes without an exception, so readers never see a partial file."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
    )
    try:
        with os.fdopen(handle, mode, **open_kwargs) as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp makes it private; give it normal rights
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@contextlib.contextmanager
def exclusive_lock(lock: Path, busy: str, error: type[Exception]) -> Iterator[None]:
    """Hold `lock` (flock, not waiting) for the block; raise error(busy) if another process
    holds it, or error(...) naming the file if it cannot be opened."""
    try:
        handle = open(lock, "w")  # noqa: SIM115 (held for the whole block)
    except OSError as problem:
        raise error(f"cannot lock {lock} ({problem.strerror})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(busy) from None
        yield

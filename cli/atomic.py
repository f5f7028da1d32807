"""Write a file whole or not at all."""

from __future__ import annotations

import contextlib
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

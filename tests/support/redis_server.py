"""A throwaway Redis server for the tests (the CeleryExecutor's broker): own folder and port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from support.mariadb_server import free_port
from support.process_tree import stop_process

START_TIMEOUT_SECONDS = 30


def ping(port: int) -> bool:
    """True when a Redis server answers PING on 127.0.0.1:port (RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Start redis-server with a new folder; yield its URL; stop it and delete the folder."""
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "redis-server not found: install Debian's redis-server "
            "(scripts/ensure_test_services.sh does it)"
        )
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="cfpb-redis-"))
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "server.log"),
            "--save",
            "",  # a throwaway broker: no snapshots, no append-only file
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ping(port):
            if server.poll() is not None or time.monotonic() > deadline:
                log = folder / "server.log"
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"Redis did not start on port {port}:\n{text}")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(server, 30)
        shutil.rmtree(folder, ignore_errors=True)

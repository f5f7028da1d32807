"""A throwaway MariaDB server for the tests: its own data folder, socket and loopback port."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.process_tree import stop_process

START_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    user: str
    password: str
    database: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mariadb_server(folder: Path, database: str = "mlmd") -> Iterator[MariaDB]:
    """Start mariadbd on a free port with a new data folder; stop it and delete nothing else."""
    for program in ("mariadbd", "mariadb-install-db", "mariadb"):
        if shutil.which(program) is None:
            raise RuntimeError(
                f"{program} not found: install Debian's mariadb-server "
                "(scripts/ensure_test_services.sh does it)"
            )
    data, sock, port = folder / "data", folder / "mysqld.sock", free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [
            "mariadbd",
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--user=root",
            f"--log-error={folder / 'error.log'}",
            f"--pid-file={folder / 'mariadbd.pid'}",
            "--max-connections=500",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = ["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-e"]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while subprocess.run([*client, "SELECT 1"], capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                log = (folder / "error.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MariaDB did not start:\n{log}")
            time.sleep(0.5)
        password = secrets.token_hex(12)
        subprocess.run(
            [
                *client,
                f"CREATE DATABASE {database}; "
                f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{password}';",
            ],
            check=True,
            capture_output=True,
        )
        yield MariaDB("127.0.0.1", port, "root", password, database)
    finally:
        stop_process(server, 60)

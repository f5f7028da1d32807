"""A throwaway PostgreSQL server for the tests (Airflow's metastore): own folder, loopback port."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from support.mariadb_server import free_port
from support.process_tree import stop_process

START_TIMEOUT_SECONDS = 60


def postgres_bin() -> Path:
    """Debian installs PostgreSQL's server programs under /usr/lib/postgresql/<major>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "PostgreSQL's initdb not found: install Debian's postgresql "
            "(scripts/ensure_test_services.sh does it)"
        )
    return Path(found[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run it as Debian's postgres user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres_server(database: str = "airflow") -> Iterator[str]:
    """Start a server with a new data folder; yield a SQLAlchemy URL; stop it and delete the
    folder at the end. The folder is not under pytest's tmp_path, which only root can enter."""
    binaries, port = postgres_bin(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="cfpb-postgres-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        _as_postgres([str(binaries / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust"]),
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        _as_postgres(
            [
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={sockets}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",  # a throwaway test database
            ]
        ),
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "w"),  # noqa: SIM115 (lives as long as the server)
    )
    try:
        ready = [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while subprocess.run(ready, capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                log = (folder / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start:\n{log}")
            time.sleep(0.3)
        subprocess.run(
            [
                str(binaries / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "airflow",
                database,
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{port}/{database}"
    finally:
        # runuser does not pass signals on: pg_ctl stops the server ("fast": clients cut off).
        stop = [str(binaries / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w"]
        subprocess.run(_as_postgres(stop), capture_output=True, timeout=60)
        stop_process(server, 30, terminate=False)
        shutil.rmtree(folder, ignore_errors=True)

"""The full-export download command, against a local HTTP server (no internet here)."""

from __future__ import annotations

import functools
import http.server
import threading
import zipfile

import pytest
from conftest import FIXTURES

from data import download


@pytest.fixture
def http_root(tmp_path):
    """A folder served on a loopback port, like the CFPB's file server."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_downloads_the_zip_and_prepares_it(http_root, tmp_path, capsys):
    root, base_url = http_root
    with zipfile.ZipFile(root / "complaints.csv.zip", "w") as archive:
        archive.write(FIXTURES / "sample_2011_2020_head.csv", "complaints.csv")
    output = tmp_path / "raw" / "complaints.csv.zip"
    prepared_dir = tmp_path / "full"
    code = download.main(
        [
            "--url",
            f"{base_url}/complaints.csv.zip",
            "--output",
            str(output),
            "--prepared-dir",
            str(prepared_dir),
        ]
    )
    assert code == 0
    assert output.read_bytes() == (root / "complaints.csv.zip").read_bytes()
    prepared = (prepared_dir / "complaints.csv").read_text(encoding="utf-8")
    assert prepared.startswith("date_received,product,")
    captured = capsys.readouterr()
    assert "rows read: 80" in captured.out
    assert "MB (100%)" in captured.err  # progress


def test_missing_file_on_server_fails_cleanly(http_root, tmp_path, capsys):
    _, base_url = http_root
    output = tmp_path / "raw" / "complaints.csv.zip"
    code = download.main(
        [
            "--url",
            f"{base_url}/nope.zip",
            "--output",
            str(output),
            "--prepared-dir",
            str(tmp_path / "full"),
        ]
    )
    assert code == 1
    assert "404" in capsys.readouterr().err
    assert list(output.parent.iterdir()) == []  # no partial download left behind
    assert not (tmp_path / "full").exists()

"""Download the full CFPB complaint database and prepare it for the pipeline.

    python -m data.download                      # the CFPB's complaints.csv.zip, several GB
    python -m data.download --url URL --output FILE --prepared-dir DIR

The archive is streamed to a temporary file and renamed when complete, so an
interrupted download leaves nothing behind that looks finished.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cli.atomic import atomic_write
from cli.bounds import add_number, seconds
from data.prepare import prepare_and_report

CFPB_EXPORT_URL = "https://files.consumerfinance.gov/ccdb/complaints.csv.zip"
DATA_DIR = Path(__file__).resolve().parent
CHUNK_BYTES = 1 << 20


def download(url: str, destination: Path, timeout: float = 60.0) -> int:
    """Stream `url` to `destination` atomically, showing progress; returns the byte count."""
    received, last_report = 0, 0.0
    with (
        atomic_write(destination, "wb") as out,
        urllib.request.urlopen(url, timeout=timeout) as response,
    ):
        total = int(response.headers.get("Content-Length") or 0)
        while chunk := response.read(CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            if time.monotonic() - last_report > 2 or received == total:
                last_report = time.monotonic()
                share = f" ({received / total:.0%})" if total else ""
                print(f"  {received / 1e6:,.1f} MB{share}", file=sys.stderr, flush=True)
        if total and received != total:
            raise OSError(f"download cut short: {received} of {total} bytes")
    return received


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download the CFPB complaint database (needs internet) and prepare it."
    )
    parser.add_argument(
        "--url", default=CFPB_EXPORT_URL, help="export to fetch (default: %(default)s)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DATA_DIR / "raw" / "complaints.csv.zip",
        help="where the downloaded archive goes (default: %(default)s)",
    )
    parser.add_argument(
        "--prepared-dir",
        type=Path,
        default=DATA_DIR / "full",
        help="folder for the prepared complaints.csv; pass it to the runner as --data-dir "
        "(default: %(default)s)",
    )
    add_number(
        parser,
        "--timeout",
        bounds=seconds(3600, above=True),
        default=60.0,
        help="seconds without data before giving up",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)

    print(f"Downloading {args.url} to {args.output}", file=sys.stderr)
    try:
        size = download(args.url, args.output, args.timeout)
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"error: could not download {args.url}: {error}", file=sys.stderr)
        return 1
    print(f"Downloaded {size / 1e6:,.1f} MB. Preparing...", file=sys.stderr)
    code = prepare_and_report([args.output], args.prepared_dir / "complaints.csv")
    if code == 0:
        print(f"Run the pipeline on it with --data-dir {args.prepared_dir}")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""python -m lineage openlineage: runs as OpenLineage events, to a file or an HTTP endpoint.

    python -m lineage openlineage --all -o events.jsonl
    python -m lineage openlineage '#3' --url http://localhost:5000

A file gets one event per line (JSON lines), written whole or not at all. An endpoint gets
them one by one, in order, through openlineage-python's HttpTransport; the first it refuses
stops the export with one line saying which event and why (exit 1). Events are built by
lineage/openlineage_events.py.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lineage.export import _destination_problem
from pipeline.metadata.store import LineageError, resolve_run, run_ids

API_KEY_ENV = "OPENLINEAGE_API_KEY"  # sent as a bearer token, never given as a flag
# Few retries: a receiver that is down should be reported in seconds, not minutes.
RETRY = {
    "total": 3,
    "connect": 2,
    "read": 2,
    "backoff_factor": 0.3,
    "status_forcelist": [502, 503, 504],
    "allowed_methods": ["POST"],
}


def add_openlineage_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "run", nargs="?", help="run id, or #N for the N-th run of 'runs' (default: newest)"
    )
    which.add_argument("--all", action="store_true", help="every run of the pipeline, oldest first")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("-o", "--output", help="JSON lines file to write (one event a line)")
    where.add_argument(
        "--url", help=f"an OpenLineage HTTP endpoint, e.g. Marquez's (bearer token: ${API_KEY_ENV})"
    )
    parser.add_argument(
        "--endpoint",
        default="api/v1/lineage",
        help="path of the lineage endpoint under --url (default: %(default)s)",
    )
    parser.add_argument(
        "--namespace", help="the jobs' OpenLineage namespace (default: the pipeline's name)"
    )


def selected_runs(store, args) -> list[str]:
    known = run_ids(store, args.pipeline_name)
    if not known:
        raise LineageError(f"pipeline {args.pipeline_name} has no runs in this store yet")
    if args.all:
        return known
    return [resolve_run(store, args.pipeline_name, args.run)] if args.run else known[-1:]


def transport_for(url: str, endpoint: str):
    """openlineage-python's HttpTransport for this URL; a bad URL is one line."""
    from openlineage.client.transport.http import (
        ApiKeyTokenProvider,
        HttpConfig,
        HttpTransport,
        TokenProvider,
    )

    key = os.environ.get(API_KEY_ENV)
    config = HttpConfig(
        url=url,
        endpoint=endpoint,
        timeout=10.0,
        retry=RETRY,
        auth=ApiKeyTokenProvider({"apiKey": key}) if key else TokenProvider({}),
    )
    try:
        return HttpTransport(config)
    except ValueError:
        raise LineageError(f"--url {url}: not an http(s) URL, e.g. http://localhost:5000") from None


def send(events: list, url: str, endpoint: str) -> None:
    """Each event in turn; the first refused stops the export."""
    import logging

    import requests

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry notices: one line is ours
    transport = transport_for(url, endpoint)
    target = f"{url.rstrip('/')}/{endpoint.lstrip('/')}"
    try:
        for number, event in enumerate(events, start=1):
            try:
                transport.emit(event)
            except requests.HTTPError as error:
                response = error.response
                reason = f"HTTP {response.status_code} {response.reason}".strip()
            except requests.ConnectionError:
                reason = "connection refused or reset"
            except requests.RequestException as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            else:
                continue
            what = f"{event.eventType.value} {event.job.name}"
            raise LineageError(
                f"{target} refused event {number} of {len(events)} ({what}): {reason}; "
                f"{number - 1} sent before it"
            )
    finally:
        transport.close()


def emit_events(store, args) -> str | dict:
    from openlineage.client.serde import Serde

    from cli.atomic import atomic_write
    from lineage.openlineage_events import run_events

    output = Path(args.output) if args.output else None
    if output is not None and (problem := _destination_problem(output)):
        raise LineageError(problem)
    runs = selected_runs(store, args)
    events = [e for run in runs for e in run_events(store, args.pipeline_name, run, args.namespace)]
    if output is not None:
        with atomic_write(output, "w") as handle:  # whole or not at all
            for event in events:
                handle.write(json.dumps(Serde.to_dict(event), sort_keys=True) + "\n")
        where, verb = str(output), "Wrote"
    else:
        send(events, args.url, args.endpoint)
        where, verb = f"{args.url.rstrip('/')}/{args.endpoint.lstrip('/')}", "Sent"
    if args.json:
        return {"events": len(events), "runs": runs, "destination": where}
    return f"{verb} {len(events)} OpenLineage events of {len(runs)} run(s) to {where}"

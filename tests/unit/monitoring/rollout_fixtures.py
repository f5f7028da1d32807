"""What the rollout tests stand on: an MLMD store with pushed models as the pipeline records them
(a run context, a Pusher execution, its PushedModel output), version folders, and a stand-in
model server that answers reloads and /metrics as told and remembers what it was asked."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2 as pb

PIPELINE = "cfpb-dispute"


def store_at(output_dir: Path) -> mlmd.MetadataStore:
    output_dir.mkdir(parents=True, exist_ok=True)
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(output_dir / "metadata.sqlite")
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return mlmd.MetadataStore(config)


def push(store, base_path: Path, version: int, run_id: str, cached: bool = False) -> int:
    """A pipeline run whose Pusher pushed `version` into base_path (cached: reused an earlier
    push); returns the PushedModel's id."""
    (base_path / str(version)).mkdir(parents=True, exist_ok=True)
    (base_path / str(version) / "decision_threshold.json").write_text('{"threshold": 0.3}')
    artifact_type = store.put_artifact_type(pb.ArtifactType(name="PushedModel"))
    execution_type = store.put_execution_type(pb.ExecutionType(name="tfx.components.Pusher"))
    context_types = {
        name: store.put_context_type(pb.ContextType(name=name))
        for name in ("pipeline", "pipeline_run", "node")
    }
    contexts = []
    for kind, name in (("pipeline", PIPELINE), ("pipeline_run", run_id),
                       ("node", f"{PIPELINE}.Pusher")):  # fmt: skip
        found = store.get_context_by_type_and_name(kind, name)
        contexts.append(found or pb.Context(type_id=context_types[kind], name=name))
    pushed = pb.Artifact(type_id=artifact_type, uri=str(base_path / str(version)))
    pushed.custom_properties["pushed"].int_value = 1
    pushed.custom_properties["pushed_destination"].string_value = str(base_path / str(version))
    state = pb.Execution.CACHED if cached else pb.Execution.COMPLETE
    event = pb.Event(type=pb.Event.OUTPUT)
    event.path.steps.add().key = "pushed_model"
    _, [artifact_id], _ = store.put_execution(
        pb.Execution(type_id=execution_type, last_known_state=state),
        [(pushed, event)],
        contexts,
        reuse_context_if_already_exist=True,
    )
    return artifact_id


class FakeServer:
    """Answers POST /v1/admin/reload with `reload_code` and GET /metrics with `metrics`."""

    def __init__(self, reload_code: int = 200, metrics: str = ""):
        self.reload_code, self.metrics, self.requests = reload_code, metrics, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, code: int, body: str, kind: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                outer.requests.append(("POST", self.path, self.headers.get("Authorization")))
                if outer.reload_code == 200:
                    self._answer(200, '{"status":"reloaded"}', "application/json")
                else:
                    error = {"error": "model cfpb: labels {'canary': 2} name versions that are "
                             "not loaded; nothing changed"}  # fmt: skip
                    self._answer(outer.reload_code, json.dumps(error), "application/json")

            def do_GET(self):  # noqa: N802
                outer.requests.append(("GET", self.path, self.headers.get("Authorization")))
                self._answer(200, outer.metrics, "text/plain")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()

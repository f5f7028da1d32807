"""The lineage command's answers to bad questions, on a small real MLMD store (no pipeline run)."""

from __future__ import annotations

import json
from pathlib import Path

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from lineage import command


@pytest.fixture
def output_dir(tmp_path) -> Path:
    """An output folder whose MLMD store holds one execution that wrote one artifact."""
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
    connection.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    store = mlmd.MetadataStore(connection)
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    artifact_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    [artifact_id] = store.put_artifacts(
        [metadata_store_pb2.Artifact(type_id=artifact_type, uri=str(tmp_path / "model"))]
    )
    [execution_id] = store.put_executions(
        [
            metadata_store_pb2.Execution(
                type_id=execution_type, last_known_state=metadata_store_pb2.Execution.COMPLETE
            )
        ]
    )
    event = metadata_store_pb2.Event(
        artifact_id=artifact_id, execution_id=execution_id, type=metadata_store_pb2.Event.OUTPUT
    )
    event.path.steps.add().key = "model"
    store.put_events([event])
    for kind, name in (("node", "cfpb-dispute.Trainer"), ("pipeline_run", "run-1")):
        context_type = store.put_context_type(metadata_store_pb2.ContextType(name=kind))
        [context_id] = store.put_contexts(
            [metadata_store_pb2.Context(type_id=context_type, name=name)]
        )
        store.put_attributions_and_associations(
            [], [metadata_store_pb2.Association(context_id=context_id, execution_id=execution_id)]
        )
    return tmp_path


def ask(output_dir: Path, capsys, *args: str) -> tuple[int, str, str]:
    code = command.main(["--output-dir", str(output_dir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("reference", ["99999999999999999999999", "0", "²"])
def test_trace_of_an_id_no_store_can_hold_is_one_line(output_dir, capsys, reference):
    """A 23-digit id ended in ValueError from MLMD's bindings (issue 23.5)."""
    code, out, err = ask(output_dir, capsys, "trace", reference)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "Traceback" not in err


def test_export_into_a_file_a_folder_or_a_missing_folder_is_one_line(output_dir, capsys):
    """FileExistsError, IsADirectoryError, and a new /nonexistent folder (issue 23.5)."""
    a_file = output_dir / "a_file"
    a_file.write_text("")
    (output_dir / "a_folder.json").mkdir()
    cases = {
        str(a_file / "g.json"): f"-o {a_file / 'g.json'}: {a_file} is a file",
        str(output_dir / "a_folder.json"): f"-o {output_dir / 'a_folder.json'} is a folder",
        str(output_dir / "nowhere" / "x.json"): f"{output_dir / 'nowhere'} does not exist",
    }
    for target, words in cases.items():
        code, out, err = ask(output_dir, capsys, "export", "-o", target)
        assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
        assert err.startswith("error: ") and words in err, err
    assert not (output_dir / "nowhere").exists()
    assert sorted(p.name for p in output_dir.iterdir()) == [
        "a_file",
        "a_folder.json",
        "metadata.sqlite",
    ]


def test_export_writes_the_graph_whole(output_dir, capsys):
    code, out, _ = ask(output_dir, capsys, "export", "-o", str(output_dir / "lineage.json"))
    assert code == 0 and "1 executions, 1 artifacts, 1 events" in out
    graph = json.loads((output_dir / "lineage.json").read_text())
    assert [e["key"] for e in graph["events"]] == ["model"]
    assert [p.name for p in output_dir.glob(".lineage.json.*")] == []  # no partial file

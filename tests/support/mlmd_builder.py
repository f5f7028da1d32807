"""A small real MLMD store shaped like a pipeline run, built without running the pipeline.

Its artifacts hold real content: the bundled sample as ExampleGen's input file (size and
SHA-256 measured), the curated schema, and an Evaluator's evaluation.json computed by the
project's bootstrap metrics from the sample's labels and a simple score.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import uuid
from pathlib import Path

import ml_metadata as mlmd
import numpy as np
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import names
from pipeline.config import BUNDLED_DATA_DIR, SCHEMA_FILE

PIPELINE = "cfpb-dispute"
SAMPLE = BUNDLED_DATA_DIR / "complaints.csv"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StoreBuilder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        connection = pb.ConnectionConfig()
        connection.sqlite.filename_uri = str(folder / "metadata.sqlite")
        connection.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = mlmd.MetadataStore(connection)
        self.pipeline = self._context("pipeline", PIPELINE)

    def _context(self, kind: str, name: str) -> int:
        found = self.store.get_context_by_type_and_name(kind, name)
        if found is not None:  # a node's context is shared by its executions in every run
            return found.id
        type_id = self.store.put_context_type(pb.ContextType(name=kind))
        [found] = self.store.put_contexts([pb.Context(type_id=type_id, name=name)])
        return found

    def artifact(self, kind: str, folder: str, **properties) -> pb.Artifact:
        uri = self.folder / "pipeline_root" / folder
        uri.mkdir(parents=True, exist_ok=True)
        type_id = self.store.put_artifact_type(pb.ArtifactType(name=kind))
        item = pb.Artifact(type_id=type_id, uri=str(uri), state=pb.Artifact.LIVE)
        for key, value in properties.items():
            target = item.custom_properties[key]
            if isinstance(value, int):
                target.int_value = value
            else:
                target.string_value = str(value)
        [item.id] = self.store.put_artifacts([item])
        return item

    def execution(self, run: int, node: str, state, inputs=(), outputs=(), **properties) -> int:
        """One component's execution in a run: inputs and outputs as (key, artifact)."""
        type_id = self.store.put_execution_type(pb.ExecutionType(name=f"tfx.{node}"))
        execution = pb.Execution(type_id=type_id, last_known_state=state, name=str(uuid.uuid4()))
        for key, value in properties.items():
            execution.custom_properties[key].string_value = value
        [execution_id] = self.store.put_executions([execution])
        events = []
        for event_type, pairs in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs)):
            for key, item in pairs:
                event = pb.Event(artifact_id=item.id, execution_id=execution_id, type=event_type)
                event.path.steps.add().key = key
                events.append(event)
        self.store.put_events(events)
        for context in (self.pipeline, run, self._context("node", f"{PIPELINE}.{node}")):
            self.store.put_attributions_and_associations(
                [], [pb.Association(context_id=context, execution_id=execution_id)]
            )
        return execution_id

    def run(self, name: str) -> int:
        return self._context("pipeline_run", name)


def evaluation_slices(resamples: int = 50) -> dict:
    """The Evaluator's slices (with intervals) of the sample's labels, scored by each
    product's dispute rate: real slice names, real numbers."""
    from pipeline.components import evaluator, metrics

    with open(SAMPLE, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[::4]
    labels = np.asarray([float(r["consumer_disputed"]) for r in rows])
    products = [r["product"] for r in rows]
    column = np.asarray(products, dtype=object)
    scores = np.asarray([labels[column == p].mean() for p in products])
    values = {key: [r[key] for r in rows] for key in names.SLICE_KEYS}
    found = metrics.evaluate_slices(
        scores, labels, evaluator.slice_masks(values), 0.25, resamples=resamples
    )
    return {name: evaluator.estimates_json(result) for name, result in found["slices"].items()}


def pipeline_run(builder: StoreBuilder, run_name: str, *, trainer_fails: bool) -> dict:
    """ExampleGen, SchemaImporter, then either a failed Trainer or an Evaluator that blessed."""
    from pipeline.metadata import evaluations

    run = builder.run(run_name)
    files = [{"path": str(SAMPLE), "bytes": SAMPLE.stat().st_size, "sha256": sha256(SAMPLE)}]
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    examples = builder.artifact(
        "Examples", f"ExampleGen/examples/{run_name}", input_files=json.dumps(files),
        input_sha256=combined, span=1,
    )  # fmt: skip
    builder.execution(
        run, names.EXAMPLE_GEN, pb.Execution.COMPLETE, outputs=[("examples", examples)],
        input_base=str(SAMPLE.parent), custom_config=json.dumps({"code_fingerprint": "abc"}),
    )  # fmt: skip
    schema = builder.artifact("Schema", f"SchemaImporter/curated_schema/{run_name}")
    shutil.copy(SCHEMA_FILE, Path(schema.uri) / "schema.pbtxt")
    builder.execution(
        run, names.SCHEMA_IMPORTER, pb.Execution.COMPLETE,
        outputs=[(names.CURATED_SCHEMA_KEY, schema)], schema_file=str(SCHEMA_FILE),
    )  # fmt: skip
    trainer_args = {
        "train_args": json.dumps({"num_steps": 60, "splits": ["train"]}),
        "custom_config": json.dumps({"seed": 0, "code_fingerprint": "f2b3"}),
    }
    if trainer_fails:
        builder.execution(
            run, names.TRAINER, pb.Execution.FAILED, inputs=[("examples", examples)],
            **trainer_args,
        )  # fmt: skip
        return {"examples": examples, "schema": schema, "files": files, "combined": combined}
    model = builder.artifact("Model", f"Trainer/model/{run_name}", decision_threshold="0.25")
    builder.execution(
        run, names.TRAINER, pb.Execution.COMPLETE, inputs=[("examples", examples)],
        outputs=[("model", model)], **trainer_args,
    )  # fmt: skip
    evaluation = builder.artifact("ModelEvaluation", f"Evaluator/evaluation/{run_name}")
    blessing = builder.artifact("ModelBlessing", f"Evaluator/blessing/{run_name}", blessed=1)
    evaluations.save_evaluation(
        evaluations.Evaluation(
            split="test", method="Poisson bootstrap, 50 resamples", threshold=0.25,
            slices=evaluation_slices(), reasons=["auc is at least 0.0000"],
        ),
        evaluation.uri,
    )  # fmt: skip
    builder.execution(
        run, names.EVALUATOR, pb.Execution.COMPLETE,
        inputs=[("examples", examples), ("model", model)],
        outputs=[("evaluation", evaluation), ("blessing", blessing)],
    )  # fmt: skip
    return {"examples": examples, "schema": schema, "model": model, "evaluation": evaluation}

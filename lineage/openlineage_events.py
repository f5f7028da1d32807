"""A pipeline run as OpenLineage RunEvents, from MLMD.

Per component execution: START when it began, then COMPLETE (also for one reused from the
cache), FAIL or ABORT when it ended; an execution still running has its START only. The
pipeline run has its own START and end event around them, and each component run's parent
run facet points at it. Datasets are the artifacts, named by their URIs; ExampleGen's inputs
are the data files it read. Run ids are UUIDs derived from MLMD, so exporting again gives the
same ids (a receiver sees the same runs, not new ones).
"""

from __future__ import annotations

import datetime
import json
import uuid

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import error_message_run, job_type_job, parent_run, tags_run

from lineage.openlineage_facets import (
    INPUT_FILES,
    PRODUCER,
    ArtifactFacets,
    dataset_name,
    gate_facet,
    input_files_facet,
)
from lineage.queries import run_summary
from pipeline import names
from pipeline.metadata.store import custom_property, run_inputs, run_outputs

# Stable run ids: uuid5 of this namespace and the pipeline's name and MLMD's ids.
ID_NAMESPACE = uuid.UUID("6f1f8a52-3c1e-4f7e-9a43-8c1b2f0d5e17")
END_STATES = {"COMPLETE": "COMPLETE", "CACHED": "COMPLETE", "FAILED": "FAIL", "CANCELED": "ABORT"}
PIPELINE_END = {"COMPLETE": "COMPLETE", "FAILED": "FAIL", "INTERRUPTED": "ABORT"}


def iso(milliseconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def pipeline_run_uuid(pipeline_name: str, run_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{pipeline_name}/{run_id}"))


def execution_uuid(pipeline_name: str, execution) -> str:
    """TFX names each execution with a UUID: that one; else one derived from its MLMD id."""
    try:
        return str(uuid.UUID(execution.name))
    except ValueError:
        return str(uuid.uuid5(ID_NAMESPACE, f"{pipeline_name}/execution/{execution.id}"))


def _job(namespace: str, name: str, job_type: str) -> Job:
    return Job(
        namespace=namespace,
        name=name,
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="TFX", jobType=job_type, producer=PRODUCER
            )
        },
    )


def _tags(values: dict[str, object]) -> tags_run.TagsRunFacet:
    return tags_run.TagsRunFacet(
        tags=[
            tags_run.TagsRunFacetFields(key=key, value=str(value), source="MLMD")
            for key, value in values.items()
        ],
        producer=PRODUCER,
    )


def run_events(
    store, pipeline_name: str, run_id: str, namespace: str | None = None
) -> list[RunEvent]:
    """Every event of one pipeline run, in time order (the pipeline's START first)."""
    namespace = namespace or pipeline_name
    summary = run_summary(store, run_id)
    facets = ArtifactFacets(store)
    parent_id = pipeline_run_uuid(pipeline_name, run_id)
    pipeline_job = _job(namespace, pipeline_name, "DAG")
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=parent_id),
        job=parent_run.Job(namespace=namespace, name=pipeline_name),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=parent_id),
            job=parent_run.RootJob(namespace=namespace, name=pipeline_name),
        ),
        producer=PRODUCER,
    )
    outputs = {r.execution.id: run_outputs(store, r.execution.id) for r in summary.executions}
    curated = next(
        (
            o[names.CURATED_SCHEMA_KEY][0].uri
            for o in outputs.values()
            if o.get(names.CURATED_SCHEMA_KEY)
        ),
        None,
    )
    started = summary.started_ms
    ended = max(
        (r.execution.last_update_time_since_epoch for r in summary.executions), default=started
    )
    start = RunEvent(
        eventType=RunState.START,
        eventTime=iso(started),
        run=Run(runId=parent_id, facets={"tags": _tags({"pipeline_run_id": run_id})}),
        job=pipeline_job,
        producer=PRODUCER,
    )
    events = []
    for record in summary.executions:
        execution = record.execution
        run_facets = {
            "parent": parent,
            "tags": _tags(
                {
                    "mlmd_execution_id": execution.id,
                    "state": record.state,
                    "component": record.node_id,
                    "pipeline_run_id": run_id,
                }
            ),
        }
        inputs = _inputs(store, facets, execution, curated, record.node_id, outputs[execution.id])
        job = _job(namespace, f"{pipeline_name}.{record.node_id}", "TASK")
        run = Run(runId=execution_uuid(pipeline_name, execution), facets=run_facets)
        events.append(
            RunEvent(
                eventType=RunState.START,
                eventTime=iso(execution.create_time_since_epoch),
                run=run,
                job=job,
                inputs=inputs,
                producer=PRODUCER,
            )
        )
        end = END_STATES.get(record.state)
        if end is None:
            continue  # still running (or killed before MLMD heard of it): START only
        end_facets, end_inputs = dict(run_facets), inputs
        if record.node_id == names.DATA_GATE and end in ("COMPLETE", "FAIL"):
            gate, problems = gate_facet(store, execution, failed=end == "FAIL")
            checked = dataset_name(run_inputs(store, execution.id)["statistics"][0].uri)
            end_inputs = [
                attr.evolve(d, inputFacets={**(d.inputFacets or {}), "dataQualityAssertions": gate})
                if (d.namespace, d.name) == checked
                else d
                for d in inputs
            ]
            if problems:
                from pipeline.components import data_validation

                end_facets["errorMessage"] = _error(data_validation.explain(problems))
        elif end == "FAIL":  # MLMD keeps no error text: the run's log has it
            end_facets["errorMessage"] = _error(f"{record.node_id} failed; see the run's log")
        events.append(
            RunEvent(
                eventType=RunState[end],
                eventTime=iso(execution.last_update_time_since_epoch),
                run=Run(runId=run.runId, facets=end_facets),
                job=job,
                inputs=end_inputs,
                outputs=_outputs(facets, outputs[execution.id], curated),
                producer=PRODUCER,
            )
        )
    events.sort(key=lambda event: event.eventTime)  # stable: START before its end at one time
    if summary.status not in PIPELINE_END:  # still running: no end yet
        return [start, *events]
    tags = _tags({"pipeline_run_id": run_id, "status": summary.status})
    finish = RunEvent(
        eventType=RunState[PIPELINE_END[summary.status]],
        eventTime=iso(ended),
        run=Run(runId=parent_id, facets={"tags": tags}),
        job=pipeline_job,
        producer=PRODUCER,
    )
    return [start, *events, finish]


def _error(message: str) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(
        message=message, programmingLanguage="python", producer=PRODUCER
    )


def _inputs(store, facets: ArtifactFacets, execution, curated, node: str, outputs: dict) -> list:
    datasets = []
    for items in run_inputs(store, execution.id).values():
        for item in items:
            namespace, name = dataset_name(item.uri)
            kind = store.get_artifact_types_by_id([item.type_id])[0].name
            datasets.append(
                InputDataset(
                    namespace=namespace,
                    name=name,
                    facets=facets.dataset_facets(item, curated),
                    inputFacets=facets.input_facets(item) if kind == "Examples" else {},
                )
            )
    if node == names.EXAMPLE_GEN:  # its input is the data files: named in its output
        for examples in outputs.get("examples", []):
            for file in _input_files(examples):
                namespace, name = dataset_name(file["path"])
                facet = input_files_facet(file["sha256"], [file])
                datasets.append(
                    InputDataset(namespace=namespace, name=name, facets={INPUT_FILES: facet})
                )
    return datasets


def _input_files(examples) -> list[dict]:
    return json.loads(custom_property(examples, "input_files") or "[]")


def _outputs(facets: ArtifactFacets, outputs: dict, curated) -> list:
    return [
        OutputDataset(
            namespace=dataset_name(item.uri)[0],
            name=dataset_name(item.uri)[1],
            facets=facets.dataset_facets(item, curated),
            outputFacets=facets.output_facets(item) if key == "examples" else {},
        )
        for key, items in outputs.items()
        for item in items
    ]

"""Every runner hands its orchestrator the graph of create_pipeline, and nothing else.

Beam and Local runners run TFX's IR compiled from the pipeline; the Kubeflow runner writes a
KFP v2 spec. The Airflow DAG is checked the same way in test_airflow.py (a real DagBag).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ir_graph, pipeline_graph, remote_config
from tfx import v1 as tfx

from pipeline import names
from pipeline import pipeline as pipeline_module
from pipeline.config import PROJECT_ROOT, PipelineConfig
from pipeline.pipeline import (
    DATA_DIR_PARAMETER,
    TRAIN_ARGS_PARAMETER,
    create_pipeline,
)
from runners import kubeflow_runner

BASELINE_RESOLVER_ID = names.BASELINE_RESOLVER

IMAGE = "registry.example.com/cfpb-dispute:test"
STATISTICS_RESOLVER_ID = names.PREVIOUS_STATISTICS_RESOLVER
REMOTE = remote_config()


def kfp_spec(tmp_path: Path, config: PipelineConfig = REMOTE) -> dict:
    return json.loads(
        kubeflow_runner.compile_pipeline(config, IMAGE, tmp_path / "s.json").read_text()
    )


def kfp_graph(spec: dict) -> dict[str, list[str]]:
    """Task graph of a compiled spec, a resolver's query tasks folded back into its node id."""

    def node(task: str) -> str:
        return BASELINE_RESOLVER_ID if task.startswith(BASELINE_RESOLVER_ID + "-") else task

    graph: dict[str, set[str]] = {}
    for task, body in spec["pipelineSpec"]["root"]["dag"]["tasks"].items():
        graph.setdefault(node(task), set()).update(map(node, body.get("dependentTasks", [])))
    return {task: sorted(upstream) for task, upstream in graph.items()}


def local_graph_on_kubeflow(config: PipelineConfig) -> dict[str, list[str]]:
    """The local graph less what KFP's compiler cannot express (see create_pipeline).

    The baseline resolver's query takes no candidate input, so it does not wait for Trainer;
    there is no previous-statistics resolver (no drift check). Everything else is the same.
    """
    graph = pipeline_graph(create_pipeline(config))
    graph.pop(STATISTICS_RESOLVER_ID)
    graph[BASELINE_RESOLVER_ID] = []
    return {
        node: [u for u in upstream if u != STATISTICS_RESOLVER_ID]
        for node, upstream in graph.items()
    }


def test_beam_and_local_runners_execute_the_pipeline_graph(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    tfx_pipeline = create_pipeline(config)
    assert ir_graph(tfx_pipeline) == pipeline_graph(tfx_pipeline)
    assert len(tfx_pipeline.components) == 13
    assert names.DATA_GATE in ir_graph(tfx_pipeline)[names.TRANSFORM]  # the gate holds Transform
    # SchemaGen infers from this run's statistics, beside the curated schema (issue 16.1)
    assert ir_graph(tfx_pipeline)[names.SCHEMA_GEN] == [names.STATISTICS_GEN]


def test_kubeflow_spec_has_the_pipeline_graph_image_and_runtime_parameters(tmp_path):
    spec = kfp_spec(tmp_path)
    assert kfp_graph(spec) == local_graph_on_kubeflow(REMOTE)

    pipeline_spec = spec["pipelineSpec"]
    executors = pipeline_spec["deploymentSpec"]["executors"]
    containers = [e["container"] for e in executors.values() if "container" in e]
    assert len(containers) == 11  # every component but the resolvers, which KFP runs itself
    assert kfp_graph(spec)[names.SCHEMA_GEN] == [names.STATISTICS_GEN]
    assert {c["image"] for c in containers} == {IMAGE}
    assert all("--direct_running_mode=in_memory" in c["args"] for c in containers)

    assert spec["runtimeConfig"]["gcsOutputDirectory"] == "gs://bucket/cfpb/pipeline_root"
    assert spec["runtimeConfig"]["parameterValues"] == {
        DATA_DIR_PARAMETER: "gs://bucket/cfpb/data",
        TRAIN_ARGS_PARAMETER: '{"splits": ["train"], "numSteps": 123}',
    }
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    assert tasks[names.EXAMPLE_GEN]["inputs"]["parameters"]["input_base"] == {
        "componentInputParameter": DATA_DIR_PARAMETER
    }
    assert tasks[names.TRAINER]["inputs"]["parameters"]["train_args"] == {
        "componentInputParameter": TRAIN_ARGS_PARAMETER
    }


def test_kubeflow_spec_loads_with_the_kfp_sdk(tmp_path):
    from kfp import components

    spec_file = tmp_path / "pipeline.yaml"
    spec_file.write_text(yaml.safe_dump(kfp_spec(tmp_path)["pipelineSpec"]))
    loaded = components.load_component_from_file(str(spec_file))
    assert loaded.name == REMOTE.pipeline_name
    assert set(loaded.component_spec.inputs) == {DATA_DIR_PARAMETER, TRAIN_ARGS_PARAMETER}
    assert names.TRAINER in loaded.pipeline_spec.root.dag.tasks


def test_a_component_added_to_the_pipeline_reaches_every_runner(tmp_path, monkeypatch):
    """As if a component were added to create_pipeline: no runner is touched."""
    build_pipeline = pipeline_module.Pipeline

    def pipeline_with_extra_component(*args, components, **kwargs):
        examples = components[0].outputs["examples"]
        extra = tfx.components.StatisticsGen(examples=examples).with_id("ExtraStatistics")
        return build_pipeline(*args, components=[*components, extra], **kwargs)

    monkeypatch.setattr(pipeline_module, "Pipeline", pipeline_with_extra_component)
    config = PipelineConfig(output_dir=str(tmp_path))
    assert ir_graph(create_pipeline(config))["ExtraStatistics"] == [names.EXAMPLE_GEN]
    assert kfp_graph(kfp_spec(tmp_path))["ExtraStatistics"] == [names.EXAMPLE_GEN]


@pytest.mark.parametrize("runner", ["beam_runner.py", "local_runner.py", "kubeflow_runner.py"])
def test_runners_reject_bad_flags_before_building_anything(runner, tmp_path):
    import subprocess

    flags = ["--data-dir", str(tmp_path / "missing")]
    if runner == "kubeflow_runner.py":
        flags += ["--image", IMAGE]
    result = subprocess.run(
        [sys.executable, str(Path(kubeflow_runner.__file__).parent / runner), *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"--data-dir {tmp_path / 'missing'} is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_container_image_is_built_from_the_locked_environment():
    """The Dockerfile cannot be built here (no Docker engine); it must match the local set-up."""
    root = PROJECT_ROOT
    dockerfile = (root / "Dockerfile").read_text()
    python_version = (root / ".python-version").read_text().strip()
    assert f"FROM python:{python_version}-" in dockerfile
    assert "-r requirements.lock" in dockerfile
    assert "COPY setup.py " in dockerfile
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    assert copied == dag_packages(), "the image must hold every package the DAG's code imports"


def dag_packages() -> set[str]:
    """The project's packages that pipeline/ and models/ import, transitively."""
    import ast

    project = {p.name for p in PROJECT_ROOT.iterdir() if (p / "__init__.py").is_file()}
    found, todo = set(), ["pipeline", "models"]
    while todo:
        package = todo.pop()
        found.add(package)
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top in project and top not in found:
                        todo.append(top)
    return found

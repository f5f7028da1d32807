"""A stand-in for the KFP backend: runs a compiled spec's tasks here, one by one, in order.

For each task it does what KFP's launcher does before starting the container: it fills the
task's ExecutorInput (parameters from constants and runtime parameters, input artifacts from
the producing tasks' outputs, output URIs under a root folder), then runs the container's
command and arguments as compiled, with `{{$}}` replaced by that ExecutorInput. What the
task's executor_output.json reports becomes the input of the tasks downstream.

Resolver tasks are queries KFP runs against its own MLMD; here the store is new, so they
resolve to nothing, as on a first run on a fresh cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

INVOCATION_PLACEHOLDER = "{{$}}"


def task_order(tasks: dict) -> list[str]:
    """Tasks so that each comes after the tasks it depends on or reads from."""
    upstream = {
        name: set(task.get("dependentTasks", []))
        | {
            source["taskOutputArtifact"]["producerTask"]
            for source in task.get("inputs", {}).get("artifacts", {}).values()
        }
        for name, task in tasks.items()
    }
    ordered: list[str] = []
    while len(ordered) < len(tasks):
        ready = sorted(n for n in tasks if n not in ordered and upstream[n] <= set(ordered))
        if not ready:
            raise ValueError(f"cycle among {sorted(set(tasks) - set(ordered))}")
        ordered += ready
    return ordered


def executor_input(
    name: str, task: dict, component: dict, runtime: dict, produced: dict, root: Path
) -> dict:
    """The ExecutorInput KFP's launcher would hand this task's container."""
    parameters = {}
    for key, source in task.get("inputs", {}).get("parameters", {}).items():
        if "componentInputParameter" in source:
            parameters[key] = runtime["parameterValues"][source["componentInputParameter"]]
        else:
            parameters[key] = source["runtimeValue"]["constant"]
    artifacts = {
        key: {
            "artifacts": produced[
                (
                    source["taskOutputArtifact"]["producerTask"],
                    source["taskOutputArtifact"]["outputArtifactKey"],
                )
            ]
        }
        for key, source in task.get("inputs", {}).get("artifacts", {}).items()
    }
    outputs = {
        key: {
            "artifacts": [
                {
                    "name": f"{name}.{key}",
                    "type": definition["artifactType"],
                    "uri": str(root / name / key),
                    "metadata": {},
                }
            ]
        }
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    return {
        "inputs": {"parameterValues": parameters, "artifacts": artifacts},
        "outputs": {"artifacts": outputs, "outputFile": str(root / name / "executor_output.json")},
    }


def run_spec(spec: dict, root: Path, log: Path) -> dict[tuple[str, str], list[dict]]:
    """Run every task of a PipelineJob JSON; returns each (task, output key)'s artifacts."""
    pipeline_spec = spec["pipelineSpec"]
    tasks = pipeline_spec["root"]["dag"]["tasks"]
    executors = pipeline_spec["deploymentSpec"]["executors"]
    produced: dict[tuple[str, str], list[dict]] = {}
    for name in task_order(tasks):
        component = pipeline_spec["components"][tasks[name]["componentRef"]["name"]]
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        executor = executors[component["executorLabel"]]
        if "resolver" in executor:
            produced.update({(name, key): [] for key in outputs})
            continue
        invocation = executor_input(
            name, tasks[name], component, spec["runtimeConfig"], produced, root
        )
        container = executor["container"]
        steps = [container.get("lifecycle", {}).get("preCacheCheck"), container]  # driver first
        for step in filter(None, steps):
            command = [sys.executable if step["command"][0] == "python" else step["command"][0]]
            arguments = [
                json.dumps(invocation) if arg == INVOCATION_PLACEHOLDER else arg
                for arg in step["args"]
            ]
            with open(log, "a") as log_file:
                result = subprocess.run(
                    [*command, *step["command"][1:], *arguments],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    timeout=1200,
                )
            if result.returncode != 0:
                raise RuntimeError(f"task {name} failed (exit {result.returncode}); see {log}")
        reported = json.loads(Path(invocation["outputs"]["outputFile"]).read_text())
        for key, artifact_list in invocation["outputs"]["artifacts"].items():
            declared = artifact_list["artifacts"][0]
            updates = reported.get("artifacts", {}).get(key, {}).get("artifacts", [{}])[0]
            produced[(name, key)] = [{**declared, **updates, "type": declared["type"]}]
    return produced

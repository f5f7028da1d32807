"""What MLMD does not record by itself, recorded on the artifacts: data and code provenance.

ExampleGen's own input fingerprint is file sizes and modification times; ours adds a
SHA-256 of every input file's content. Trainer's model gets the git revision of the code,
the versions of the packages that trained it, and its decision threshold.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from tfx.components.trainer.executor import GenericExecutor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from data import spans
from pipeline.config import PROJECT_ROOT

# The code behind each cached result, hashed into its component's properties: TFX's cache key
# holds the class or function path only, so without these an edit would reuse stale results.
MODEL_CODE = ("models/*.py",)
EXAMPLE_GEN_CODE = (
    "pipeline/components/example_gen.py",
    "pipeline/components/example_records.py",
    "data/file_checks.py",
    "models/features.py",
)
GATE_CODE = (
    "pipeline/components/gates.py",
    "pipeline/components/data_validation.py",
    "pipeline/metadata/artifacts.py",
)
EVALUATOR_CODE = (
    "pipeline/components/evaluator.py",
    "pipeline/components/metrics.py",
    "pipeline/components/fairness.py",
    "pipeline/metadata/evaluations.py",
    "pipeline/names.py",
)

INPUT_SHA256 = "input_sha256"
INPUT_FILES = "input_files"
FEEDBACK = "feedback_manifest"
GIT_REVISION = "git_revision"
PACKAGE_VERSIONS = "package_versions"
DECISION_THRESHOLD = "decision_threshold"
PACKAGES = (
    "tfx",
    "tensorflow",
    "tensorflow-transform",
    "tensorflow-model-analysis",
    "tensorflow-data-validation",
    "ml-metadata",
    "apache-beam",
    "keras-tuner",
    "tf-keras",
    "cfpb-dispute-pipeline",
)
CHUNK_BYTES = 1 << 20


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with fileio.open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def input_files_record(paths: list[str]) -> tuple[str, list[dict]]:
    """(one SHA-256 over all files, [{path, sha256, bytes}]) for the files a run read."""
    files = [
        {"path": path, "sha256": file_sha256(path), "bytes": fileio.stat(path).length}
        for path in sorted(paths)
    ]
    combined = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    return combined, files


def record_input_files(examples, paths: list[str]) -> None:
    """Put the content fingerprint of the input files on an Examples artifact."""
    combined, files = input_files_record(paths)
    examples.set_string_custom_property(INPUT_SHA256, combined)
    examples.set_string_custom_property(INPUT_FILES, json.dumps(files))


def record_feedback(examples, paths: list[str]) -> None:
    """Put the manifests of feedback spans read (feedback.join) on an Examples artifact, so
    a model's lineage names the request log rows and the outcomes file it learned from."""
    manifests = []
    for folder in sorted({os.path.dirname(path) for path in paths}):
        location = os.path.join(folder, spans.FEEDBACK_MANIFEST)
        if fileio.exists(location):
            with fileio.open(location, "r") as handle:
                manifests.append({"manifest": location, **json.loads(handle.read())})
    if manifests:
        examples.set_string_custom_property(FEEDBACK, json.dumps(manifests))


def git_revision() -> str:
    """The project's git commit, with '-dirty' for uncommitted changes; 'unknown' outside git."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    if revision.returncode != 0:
        return "unknown"
    return revision.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


class TrainerExecutor(GenericExecutor):
    """TFX's Trainer executor, which also records code and package versions on the model."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        super().Do(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(output_dict["model"])
        model.set_string_custom_property(GIT_REVISION, git_revision())
        model.set_string_custom_property(PACKAGE_VERSIONS, json.dumps(package_versions()))
        from models import trainer  # TensorFlow: loaded only where a model is trained

        decision = trainer.saved_threshold(path_utils.serving_model_path(model.uri))
        if decision is not None:
            model.set_float_custom_property(DECISION_THRESHOLD, decision["threshold"])


def code_fingerprint(patterns: tuple[str, ...] = MODEL_CODE, root: Path = PROJECT_ROOT) -> str:
    """A hash of the files these glob patterns match under root, names and contents."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]

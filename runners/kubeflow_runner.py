"""Compile the pipeline into a KFP v2 pipeline spec for Kubeflow Pipelines or Vertex AI.

    python runners/kubeflow_runner.py --image REGISTRY/cfpb-dispute:TAG \\
        --data-dir gs://BUCKET/data --output-dir gs://BUCKET/cfpb [--spec-file FILE] ...

Writes a PipelineJob JSON (pipelineSpec and runtimeConfig) built by TFX's
KubeflowV2DagRunner from the same create_pipeline(config). Every task runs the image given
with --image (see the Dockerfile). The data folder and the training arguments are runtime
parameters that can be changed per run when it is submitted.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", category=FutureWarning)  # dependencies' notices, not ours

from pipeline import config as pipeline_config  # noqa: E402
from pipeline import preflight  # noqa: E402

DEFAULT_SPEC_FILE = "cfpb-dispute-kfp.json"
# The Dockerfile copies the project to /pipeline; tasks read the curated schema there.
IMAGE_SCHEMA_FILE = "/pipeline/pipeline/schema/schema.pbtxt"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Compile the CFPB dispute pipeline into a KFP v2 pipeline spec (JSON) for "
        "Kubeflow Pipelines or Vertex AI Pipelines. Nothing runs here; submit the file with "
        "the KFP or Vertex AI client.",
    )
    parser.add_argument(
        "--image",
        required=True,
        help="container image every task runs: the project's Dockerfile, pushed to a registry",
    )
    parser.add_argument(
        "--spec-file",
        default=DEFAULT_SPEC_FILE,
        help=f"where to write the compiled spec (default: {DEFAULT_SPEC_FILE})",
    )
    pipeline_config.add_config_arguments(parser)
    return parser


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = make_parser()
    args = parser.parse_args(argv)
    config = pipeline_config.config_from_arguments(args)
    # Only what the spec is built from: the output folder and MLMD belong to the cluster.
    for problem in preflight.setting_problems(config) + preflight.data_problems(config):
        parser.error(problem)
    if not pipeline_config.is_uri(config.output_dir):
        print(
            f"Note: --output-dir {config.output_dir} is a local path; on a cluster the pipeline "
            "root must be storage every task can reach, e.g. gs://BUCKET/cfpb.",
            file=sys.stderr,
        )
    args.config = config
    # The bundled schema is read from the image; one given by --schema-file where it is (gs://).
    bundled_schema = config.schema_file == str(pipeline_config.SCHEMA_FILE)
    args.schema_file_in_image = IMAGE_SCHEMA_FILE if bundled_schema else None
    return args


def compile_pipeline(
    config: pipeline_config.PipelineConfig,
    image: str,
    spec_file: Path,
    schema_file_in_image: str | None = None,
) -> Path:
    """Write the KFP v2 PipelineJob JSON for create_pipeline(config) and return its path."""
    from tfx import v1 as tfx

    from pipeline.pipeline import KUBEFLOW_OPTIONS, create_pipeline, runtime_parameter_values

    spec_file = spec_file.resolve()
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, use_pipeline_spec_2_1=True
        ),
        output_dir=str(spec_file.parent),
        output_filename=spec_file.name,
    )
    runner.run(
        create_pipeline(config, **KUBEFLOW_OPTIONS, schema_file_in_image=schema_file_in_image),
        parameter_values=runtime_parameter_values(config),
    )
    return spec_file


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    spec_file = compile_pipeline(
        args.config, args.image, Path(args.spec_file), args.schema_file_in_image
    )
    print(f"Wrote {spec_file} (pipeline {args.config.pipeline_name}, image {args.image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# The image every Kubeflow Pipelines / Vertex AI task runs (runners/kubeflow_runner.py --image):
# the locked dependencies and this project, on the same CPython as .python-version.
#   docker build -t REGISTRY/cfpb-dispute:TAG . && docker push REGISTRY/cfpb-dispute:TAG
# Tasks start `python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor`,
# so the image needs no entrypoint of its own.
FROM python:3.10.13-slim-bookworm

ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONUNBUFFERED=1

WORKDIR /pipeline
COPY requirements.lock ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache -r requirements.lock

COPY setup.py ./
# The packages the DAG's code imports (tests/unit/runners/test_runner_parity.py keeps this true).
COPY cli cli
COPY data data
COPY models models
COPY pipeline pipeline
RUN uv pip install --system --no-cache --no-deps .

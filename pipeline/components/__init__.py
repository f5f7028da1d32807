"""The project's own TFX components and executors. They run inside the DAG on every
orchestrator, so they ship in the container image (see the Dockerfile)."""

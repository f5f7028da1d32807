"""ML Metadata for people: where a model came from, what a data set trained, what changed.

The lineage command (python -m lineage: command.py) and its answers (queries, diff), the
runners' run summary (report), the inferred-vs-curated schema difference (schema_diff) and its
proposal command (schema_proposal), the notebook's offline views (notebook/), and views of MLMD
in other tools: MLflow runs and registry (mlflow_record, mlflow_log, mlflow_backfill; the
server launcher mlflow_server) and OpenLineage events (openlineage_events, openlineage_facets,
openlineage_export). The DAG's code never imports these; it reads MLMD through
pipeline/metadata/, which these use too.
"""

"""ML Metadata for people: where a model came from, what a data set trained, what changed.

The lineage command (python -m lineage: command.py) and its answers (queries, diff), the
runners' run summary (report), the inferred-vs-curated schema difference (schema_diff) and its
proposal command (schema_proposal), and the notebook's offline views (notebook/). The DAG's
code never imports these; it reads MLMD through pipeline/metadata/, which these use too.
"""

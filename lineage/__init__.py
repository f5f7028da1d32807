"""ML Metadata for people and for the pipeline: store primitives (store), the lineage
command's answers (queries, diff, cli), run reports (report), and artifact contents (artifacts).
"""

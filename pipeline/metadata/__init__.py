"""The pipeline's own record, read back: MLMD store primitives (store) and what its artifacts hold
(artifacts). The DAG's code reads them (look-back resolvers, the gate, the Evaluator), and so
do the tools above it (lineage, monitoring, runners).
"""

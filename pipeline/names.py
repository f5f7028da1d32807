"""Names the pipeline and its tooling share: node ids and the evaluation metrics.

create_pipeline names its components with these ids, and the runners, reports, lineage
queries and tests find components by them. A light module (no TFX import), so tooling can
use the names without loading TFX.
"""

EXAMPLE_GEN = "ExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_IMPORTER = "SchemaImporter"
EXAMPLE_VALIDATOR = "ExampleValidator"
PREVIOUS_STATISTICS_RESOLVER = "PreviousStatisticsResolver"
DATA_GATE = "DataValidationGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
BASELINE_RESOLVER = "LatestBlessedModelResolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# TFMA metric classes the Evaluator computes, and the names their values are stored under.
EVAL_METRICS = {
    "AUC": "auc",
    "BinaryAccuracy": "binary_accuracy",
    "Precision": "precision",
    "Recall": "recall",
    "ExampleCount": "example_count",
}

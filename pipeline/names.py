"""Names the pipeline and its tooling share: node ids and the evaluation metrics.

create_pipeline names its components with these ids, and the runners, reports, lineage
queries and tests find components by them. A light module (no TFX import), so tooling can
use the names without loading TFX.
"""

EXAMPLE_GEN = "ExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
# SchemaImporter's output key. Not "schema", SchemaGen's: Airflow's launcher names artifacts
# "<key>:<run id>", which MLMD requires to be unique per type, and lineage reads it by key.
CURATED_SCHEMA_KEY = "curated_schema"
SCHEMA_IMPORTER = "SchemaImporter"
EXAMPLE_VALIDATOR = "ExampleValidator"
PREVIOUS_STATISTICS_RESOLVER = "PreviousStatisticsResolver"
DATA_GATE = "DataValidationGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
# Stands in for the Tuner in runs that reuse earlier hyperparameters (pipeline/hyperparameters.py).
HYPERPARAMETERS_RESOLVER = "LatestHyperparametersResolver"
TRAINER = "Trainer"
BASELINE_RESOLVER = "LatestBlessedModelResolver"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# ExampleGen's splits, by hash of each example: the model learns from train; the Tuner, the
# Trainer's validation and the decision threshold use validation; the Evaluator, the blessing,
# fairness and the model card use test, which nothing before them has seen.
TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

# The slice of every example, as reports name it.
OVERALL = "Overall"
# The Evaluator's slices (besides the overall one): the fairness report compares each
# group of these with the overall slice.
SLICE_KEYS = ("tags", "submitted_via", "product")

# TFMA metric classes the Evaluator computes, and the names their values are stored under.
EVAL_METRICS = {
    "AUC": "auc",
    "BinaryAccuracy": "binary_accuracy",
    "ExampleCount": "example_count",
    "Calibration": "calibration",  # sum of predictions / sum of labels: 1.0 is calibrated
}
# Metrics at the model's decision threshold: the Evaluator adds them once it has read the
# threshold from the model (pipeline/components/evaluator.py).
THRESHOLD_METRICS = {"Precision": "precision", "Recall": "recall", "FPR": "fpr", "FNR": "fnr"}
# Fixed thresholds precision and recall are also reported at, to compare models by.
FIXED_THRESHOLDS = (0.3, 0.5)
FIXED_THRESHOLD_METRICS = ("Precision", "Recall")


def at_threshold(metric: str, threshold: float) -> str:
    """The stored name of a metric at a fixed threshold, e.g. precision@0.5."""
    return f"{metric}@{threshold:g}"


# Every metric name the reports read, in display order.
REPORTED_METRICS = (
    *EVAL_METRICS.values(),
    *THRESHOLD_METRICS.values(),
    *(
        at_threshold(THRESHOLD_METRICS[m], t)
        for t in FIXED_THRESHOLDS
        for m in FIXED_THRESHOLD_METRICS
    ),
)

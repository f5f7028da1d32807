"""The one source of truth for column and feature names, and the model's fixed sizes."""

import re

LABEL_KEY = "consumer_disputed"
ID_KEY = "complaint_id"
DATE_KEY = "date_received"
TEXT_KEY = "consumer_complaint_narrative"
ZIP_KEY = "zip_code"
# The CFPB's Tags: "Older American", "Servicemember", both, or "" (none). Used to slice the
# evaluation for fairness, not as a model input.
TAGS_KEY = "tags"

# Categorical columns; with the derived ones below, they share one vocabulary (CATEGORY_VOCABULARY).
CATEGORICAL_KEYS = (
    "product",
    "sub_product",
    "issue",
    "sub_issue",
    "company",
    "state",
    "submitted_via",
    "company_response",
    "timely_response",
)

# The prepared CSV's columns, in file order. Every one but the label is a string.
CANONICAL_COLUMNS = (
    DATE_KEY,
    "product",
    "sub_product",
    "issue",
    "sub_issue",
    TEXT_KEY,
    "company",
    "state",
    ZIP_KEY,
    TAGS_KEY,
    "submitted_via",
    "company_response",
    "timely_response",
    ID_KEY,
    LABEL_KEY,
)

# What a serving request may carry: every canonical column but the label.
RAW_FEATURE_KEYS = tuple(column for column in CANONICAL_COLUMNS if column != LABEL_KEY)
# Carried along for joins (the id) and slicing (tags), never learned from: an example with only
# these has nothing the model can use, so the server refuses it and feedback never trains on it.
PASSTHROUGH_KEYS = (ID_KEY, TAGS_KEY)
# What the model learns from.
MODEL_INPUT_KEYS = tuple(key for key in RAW_FEATURE_KEYS if key not in PASSTHROUGH_KEYS)

# Features derived in preprocessing_fn besides the categorical columns.
ZIP3_KEY = "zip3"
YEAR_KEY = "year_received"
MONTH_KEY = "month_received"
DERIVED_CATEGORICAL_KEYS = (ZIP3_KEY, YEAR_KEY, MONTH_KEY)
# Every feature the model embeds as a category.
CATEGORY_KEYS = CATEGORICAL_KEYS + DERIVED_CATEGORICAL_KEYS

# The serving signature's outputs: the probability that the consumer disputes, and the
# decision (1: disputed) at the model's decision threshold.
PREDICTION_KEY = "dispute_probability"
DECISION_KEY = "disputed"
# A second signature with the probability alone: TF Serving's REST API then answers one value
# per example, {"predictions": [0.24]}, as a client written for one output expects.
PROBABILITY_SIGNATURE = "dispute_probability"

# Every category shares one vocabulary of "<key><CATEGORY_SEPARATOR><value>" terms, with each
# feature's CATEGORICAL_TOP_K most frequent values ('' counts as one) and one out-of-vocabulary
# bucket for all: one tf.Transform analyzer instead of one per feature, whose Beam stages were
# most of Transform's time (benchmarks/README.md).
CATEGORY_VOCABULARY = "categories"
CATEGORY_SEPARATOR = "\x1f"  # ASCII unit separator: in no key, and not in CFPB's values

# Vocabulary sizes and the narrative's token window.
CATEGORICAL_TOP_K = 500
OOV_BUCKETS = 1
TEXT_VOCAB_SIZE = 10_000
TEXT_MAX_TOKENS = 300


INTEGER = re.compile(r"-?[0-9]+")


def integer_label(text: str) -> int | None:
    """The label as an integer, or None when the text is not one (e.g. "Yes", "1.0")."""
    return int(text) if INTEGER.fullmatch(text) else None


def transformed_name(key: str) -> str:
    """Name of a feature after tf.Transform."""
    return f"{key}_xf"


def vocabulary_name(key: str) -> str:
    """Name of the vocabulary file tf.Transform writes for the narrative or CATEGORY_VOCABULARY."""
    return f"{key}_vocab"

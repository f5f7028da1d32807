"""The pushed model against a scikit-learn baseline on the same test rows.

    .venv/bin/python benchmarks/model_quality.py [--output-dir outputs]

Both see exactly the pipeline's splits (read from the pushed model's ExampleGen output). The
baseline: TF-IDF of the narrative (words and word pairs) plus one-hot categoricals, logistic
regression with scikit-learn's defaults otherwise. Classification metrics use 0.5.
"""

from __future__ import annotations

import argparse

import numpy as np
from common import machine, markdown_table, pushed_model, serialized_examples
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from models import features
from pipeline.config import DEFAULT_OUTPUT_DIR

BATCH = 256


def to_frame(records: list[bytes]):
    import pandas as pd
    import tensorflow as tf

    rows = []
    for record in records:
        example = tf.train.Example.FromString(record).features.feature
        row = {k: example[k].bytes_list.value[0].decode() for k in features.RAW_FEATURE_KEYS}
        row[features.LABEL_KEY] = example[features.LABEL_KEY].int64_list.value[0]
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_scores(train, evaluation) -> np.ndarray:
    columns = ColumnTransformer(
        [
            (
                "narrative",
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                "consumer_complaint_narrative",
            ),
            ("categories", OneHotEncoder(handle_unknown="ignore"), list(features.CATEGORICAL_KEYS)),
        ]
    )
    model = make_pipeline(columns, LogisticRegression(max_iter=2000))
    model.fit(train, train[features.LABEL_KEY])
    return model.predict_proba(evaluation)[:, 1]


def pipeline_scores(model_dir: str, records: list[bytes]) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    scores = [
        serve(examples=tf.constant(records[i : i + BATCH]))[features.PREDICTION_KEY].numpy()
        for i in range(0, len(records), BATCH)
    ]
    return np.concatenate(scores).reshape(-1)


def metrics(labels: np.ndarray, scores: np.ndarray) -> list[str]:
    predicted = scores >= 0.5
    return [
        f"{roc_auc_score(labels, scores):.3f}",
        f"{accuracy_score(labels, predicted):.3f}",
        f"{precision_score(labels, predicted, zero_division=0):.3f}",
        f"{recall_score(labels, predicted):.3f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(DEFAULT_OUTPUT_DIR))
    args = parser.parse_args()
    model_dir, examples_uri = pushed_model(args.output_dir)
    eval_records = serialized_examples(examples_uri, "test")
    train, evaluation = (
        to_frame(serialized_examples(examples_uri, "train")),
        to_frame(eval_records),
    )
    labels = evaluation[features.LABEL_KEY].to_numpy()
    rows = [
        ["pipeline model (pushed)", *metrics(labels, pipeline_scores(model_dir, eval_records))],
        [
            "TF-IDF + one-hot, logistic regression",
            *metrics(labels, baseline_scores(train, evaluation)),
        ],
    ]
    print(f"Machine: {machine()}")
    print(
        f"Model: {model_dir}; train {len(train)} rows, test {len(evaluation)} rows "
        f"({labels.mean():.1%} disputed)\n"
    )
    print(markdown_table(["model", "AUC", "accuracy", "precision", "recall"], rows))


if __name__ == "__main__":
    main()

"""tf.Transform preprocessing: category and word vocabularies, ZIP and date features, tokens.

Everything the model sees is computed here, inside the transform graph, so the pushed
model applies exactly the same steps to a raw serving request.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from models import features

# A narrative with no words becomes this one token, so the text is never empty.
EMPTY_NARRATIVE_TOKEN = "emptynarrative"


def as_strings(value: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A feature as a 1-D string tensor; a missing value becomes ''."""
    if isinstance(value, tf.SparseTensor):
        value = tft.sparse_tensor_to_dense_with_shape(value, [None, 1], default_value="")
    return tf.reshape(value, [-1])


def normalize_category(value: tf.Tensor) -> tf.Tensor:
    """Case and surrounding whitespace carry no meaning in CFPB categories."""
    return tf.strings.lower(tf.strings.strip(value))


def zip3(zip_code: tf.Tensor) -> tf.Tensor:
    """The 3-digit ZIP prefix (all a masked ZIP like 124XX keeps), or '' if none."""
    has_prefix = tf.strings.regex_full_match(zip_code, r"\d{3}.*")
    return tf.where(has_prefix, tf.strings.regex_replace(zip_code, r"^(\d{3}).*", r"\1"), "")


def date_parts(date: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Year and month strings of an ISO date; '' where the date is malformed."""
    # Regexes, not substr: substr fails on strings shorter than its window.
    is_iso = tf.strings.regex_full_match(date, r"\d{4}-\d{2}-\d{2}")
    year = tf.where(is_iso, tf.strings.regex_replace(date, r"^(\d{4}).*", r"\1"), "")
    month = tf.where(is_iso, tf.strings.regex_replace(date, r"^\d{4}-(\d{2}).*", r"\1"), "")
    return year, month


def category_terms(categories: dict[str, tf.Tensor]) -> tf.Tensor:
    """[batch, len(categories)] terms of the shared vocabulary: each value prefixed with its key,
    so that equal values of two features stay two terms ('' included: missing is a value)."""
    return tf.stack(
        [
            tf.strings.join([key, features.CATEGORY_SEPARATOR, value])
            for key, value in categories.items()
        ],
        axis=1,
    )


def category_of(term: bytes) -> bytes:
    """The key a shared-vocabulary term belongs to: tf.Transform keeps each key's top values."""
    return term.split(features.CATEGORY_SEPARATOR.encode(), 1)[0]


def narrative_tokens(text: tf.Tensor) -> tf.RaggedTensor:
    """Lower-cased word tokens, at most TEXT_MAX_TOKENS per narrative, never none."""
    words = tf.strings.regex_replace(tf.strings.lower(text), r"[^a-z0-9]+", " ")
    words = tf.where(tf.strings.strip(words) == "", EMPTY_NARRATIVE_TOKEN, words)
    return tf.strings.split(words)[:, : features.TEXT_MAX_TOKENS]


def preprocessing_fn(
    inputs: dict[str, Any], custom_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Raw canonical columns -> integer ids the model embeds.

    custom_config is unused: the pipeline passes the code fingerprint through it so
    that Transform reruns when this code changes.
    """
    del custom_config
    categories = {
        key: normalize_category(as_strings(inputs[key])) for key in features.CATEGORICAL_KEYS
    }
    categories[features.ZIP3_KEY] = zip3(as_strings(inputs[features.ZIP_KEY]))
    year, month = date_parts(as_strings(inputs[features.DATE_KEY]))
    categories[features.YEAR_KEY] = year
    categories[features.MONTH_KEY] = month

    # top_k must be positive: the one most frequent term overall is also in its key's top values.
    category_ids = tft.compute_and_apply_vocabulary(
        category_terms(categories),
        top_k=1,
        coverage_top_k=features.CATEGORICAL_TOP_K,
        key_fn=category_of,
        num_oov_buckets=features.OOV_BUCKETS,
        vocab_filename=features.vocabulary_name(features.CATEGORY_VOCABULARY),
    )
    outputs = {
        features.transformed_name(key): category_ids[:, column]
        for column, key in enumerate(categories)
    }

    tokens = narrative_tokens(as_strings(inputs[features.TEXT_KEY]))
    token_ids = tft.compute_and_apply_vocabulary(
        tokens,
        top_k=features.TEXT_VOCAB_SIZE,
        num_oov_buckets=features.OOV_BUCKETS,
        vocab_filename=features.vocabulary_name(features.TEXT_KEY),
    )
    # Shift ids by one so that 0 is padding, then pad to a fixed window.
    outputs[features.transformed_name(features.TEXT_KEY)] = (token_ids + 1).to_tensor(
        default_value=0, shape=[None, features.TEXT_MAX_TOKENS]
    )

    if features.LABEL_KEY in inputs:
        label = inputs[features.LABEL_KEY]
        if isinstance(label, tf.SparseTensor):
            label = tft.sparse_tensor_to_dense_with_shape(label, [None, 1], default_value=0)
        outputs[features.LABEL_KEY] = tf.reshape(tf.cast(label, tf.int64), [-1])
    return outputs

"""preprocessing_fn helpers in eager mode, and the whole function under real tf.Transform."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from models import features, preprocessing


def strings(*values: str) -> tf.Tensor:
    return tf.constant(list(values))


def test_missing_sparse_values_become_empty_strings():
    sparse = tf.SparseTensor(indices=[[1, 0]], values=["b"], dense_shape=[3, 1])
    assert preprocessing.as_strings(sparse).numpy().tolist() == [b"", b"b", b""]
    assert preprocessing.as_strings(tf.constant([["a"], ["b"]])).shape == (2,)


def test_zip3_keeps_masked_prefixes_and_drops_garbage():
    result = preprocessing.zip3(strings("124XX", "06106", "", "AB123"))
    assert result.numpy().tolist() == [b"124", b"061", b"", b""]


def test_date_parts():
    year, month = preprocessing.date_parts(strings("2015-03-19", "7/29/2013", ""))
    assert year.numpy().tolist() == [b"2015", b"", b""]
    assert month.numpy().tolist() == [b"03", b"", b""]


def test_narrative_tokens_lowercase_strip_punctuation_and_never_empty():
    tokens = preprocessing.narrative_tokens(strings("Paid {$120.00}, XXXX!\nThanks", "", " ?! "))
    assert tokens.to_list() == [
        [b"paid", b"120", b"00", b"xxxx", b"thanks"],
        [preprocessing.EMPTY_NARRATIVE_TOKEN.encode()],
        [preprocessing.EMPTY_NARRATIVE_TOKEN.encode()],
    ]
    long_text = tf.constant([" ".join(["word"] * (features.TEXT_MAX_TOKENS + 50))])
    assert len(preprocessing.narrative_tokens(long_text).to_list()[0]) == features.TEXT_MAX_TOKENS


def test_categories_are_case_and_space_insensitive():
    result = preprocessing.normalize_category(strings(" Credit card ", "CREDIT CARD"))
    assert result.numpy().tolist() == [b"credit card", b"credit card"]


def test_transform_outputs_ids_within_vocabularies(transformed, raw_rows):
    tf_transform_output, instances = transformed
    assert len(instances) == len(raw_rows)
    expected_keys = {
        features.transformed_name(key)
        for key in features.CATEGORICAL_KEYS
        + features.DERIVED_CATEGORICAL_KEYS
        + (features.TEXT_KEY,)
    } | {features.LABEL_KEY}
    assert set(instances[0]) == expected_keys

    # Every category's ids point at terms of its own key in the one shared vocabulary.
    vocabulary = tf_transform_output.vocabulary_by_name(
        features.vocabulary_name(features.CATEGORY_VOCABULARY)
    )
    separator = features.CATEGORY_SEPARATOR.encode()
    for key in features.CATEGORY_KEYS:
        ids = np.array([instance[features.transformed_name(key)] for instance in instances])
        assert ids.min() >= 0 and ids.max() < len(vocabulary) + features.OOV_BUCKETS, key
        terms = {vocabulary[i] for i in ids if i < len(vocabulary)}
        assert terms and all(term.startswith(key.encode() + separator) for term in terms), key

    text = np.stack(
        [instance[features.transformed_name(features.TEXT_KEY)] for instance in instances]
    )
    assert text.shape == (len(raw_rows), features.TEXT_MAX_TOKENS)
    # Every narrative has a first token; padding (0) only ever follows tokens.
    assert (text[:, 0] > 0).all()
    lengths = (text > 0).sum(axis=1)
    assert all(
        (row[:n] > 0).all() and (row[n:] == 0).all() for row, n in zip(text, lengths, strict=True)
    )
    labels = [instance[features.LABEL_KEY] for instance in instances]
    assert labels == [int(row[features.LABEL_KEY]) for row in raw_rows]


def test_the_shared_vocabulary_keeps_each_categorys_top_values_apart(transformed, raw_rows):
    tf_transform_output, _ = transformed
    vocabulary = tf_transform_output.vocabulary_by_name(
        features.vocabulary_name(features.CATEGORY_VOCABULARY)
    )
    assert len(set(vocabulary)) == len(vocabulary)
    per_key: dict[bytes, list[bytes]] = {}
    for term in vocabulary:
        per_key.setdefault(preprocessing.category_of(term), []).append(term)
    assert set(per_key) == {key.encode() for key in features.CATEGORY_KEYS}
    assert all(len(terms) <= features.CATEGORICAL_TOP_K for terms in per_key.values())
    # Every value of a feature with few values is a term, a missing one ('') included.
    separator = features.CATEGORY_SEPARATOR.encode()
    values = {
        preprocessing.normalize_category(tf.constant(row["sub_issue"])).numpy() for row in raw_rows
    }
    assert b"" in values
    assert {term.split(separator, 1)[1] for term in per_key[b"sub_issue"]} == values


def test_category_terms_prefix_each_value_with_its_key():
    terms = preprocessing.category_terms(
        {"state": strings("ny", ""), "product": strings("ny", "x")}
    )
    separator = features.CATEGORY_SEPARATOR
    assert terms.numpy().tolist() == [
        [f"state{separator}ny".encode(), f"product{separator}ny".encode()],
        [f"state{separator}".encode(), f"product{separator}x".encode()],
    ]
    assert preprocessing.category_of(terms.numpy()[1][0]) == b"state"


def test_rows_without_narrative_share_the_empty_token(transformed, raw_rows):
    tf_transform_output, instances = transformed
    vocabulary = tf_transform_output.vocabulary_by_name(features.vocabulary_name(features.TEXT_KEY))
    empty_id = vocabulary.index(preprocessing.EMPTY_NARRATIVE_TOKEN.encode()) + 1
    for row, instance in zip(raw_rows, instances, strict=True):
        token_ids = instance[features.transformed_name(features.TEXT_KEY)]
        if not row[features.TEXT_KEY].strip():
            assert token_ids[0] == empty_id and (token_ids[1:] == 0).all()

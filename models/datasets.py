"""Batches of transformed examples for Tuner and Trainer."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio

from models import features

BATCH_SIZE = 64


def make_dataset(
    file_pattern: list[str],
    data_accessor: DataAccessor,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int = BATCH_SIZE,
) -> tf.data.Dataset:
    """(features, label) batches, repeated indefinitely: steps bound training."""
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=features.LABEL_KEY),
        tf_transform_output.transformed_metadata.schema,
    ).repeat()

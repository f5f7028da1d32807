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
    once: bool = False,
) -> tf.data.Dataset:
    """(features, label) batches: training data shuffled and repeated indefinitely (steps bound
    training); with once=True, every example exactly once, in order (validation)."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        label_key=features.LABEL_KEY,
        num_epochs=1 if once else None,
        shuffle=not once,
    )
    return data_accessor.tf_dataset_factory(
        file_pattern, options, tf_transform_output.transformed_metadata.schema
    )

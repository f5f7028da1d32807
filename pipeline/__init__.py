import os

# TFX 1.16 and keras-tuner 1.3 work with Keras 2 (tf_keras); TensorFlow reads this
# variable when tf.keras is first used, so set it before anything touches TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

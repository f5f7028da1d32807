"""A quiet console for running the pipeline interactively (the notebook).

Run in a notebook, TFX, TensorFlow, Keras and Beam print dozens of lines that say nothing about
the run: optional modules not installed, assets written, deprecations inside the libraries,
one line per Keras epoch. quiet() drops those and keeps every other warning and error, once,
on stderr. The notebook shows training through its curves instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

# Messages that are noise in every run; any other warning or error still shows.
NOISE = (
    "is not available.",  # TF's optional modules: tensorflow_decision_forests, struct2tensor...
    "Assets written to",
    "is deprecated",  # deprecations inside TFX/TF/TFMA, not in this project's code
    "Instructions for updating",
    "Dependencies required for Interactive Beam",
    "Couldn't find python-snappy",
    "Tables initialized inside a tf.function",
    "does not have payload_format custom property",
    "is slow compared to the batch time",
    "Oracle triggered exit",
)
# Loggers whose INFO lines are progress chatter; WARNING and above still show.
CHATTY_LOGGERS = ("absl", "tensorflow", "apache_beam", "tfx", "keras_tuner")


class NoiseFilter(logging.Filter):
    """Drops records whose message contains one of NOISE."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern in message for pattern in NOISE)


def quiet() -> None:
    """Route Python logging to one stderr handler at WARNING, without the known noise.

    Call before TensorFlow logs anything: TensorFlow adds its own (stdout) handler, printing
    every line twice, only when the root logger has none.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO and WARNING lines
    # Libraries' notices about their own dependencies (google.api_core on Python 3.10...).
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    # TFMA divides by zero computing AUC of a one-class slice (shown as undefined instead).
    warnings.filterwarnings(
        "ignore", "invalid value encountered", RuntimeWarning, "tensorflow_model_analysis"
    )
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s: %(message)s"))
        if not any(isinstance(f, NoiseFilter) for f in handler.filters):
            handler.addFilter(NoiseFilter())
    root.setLevel(logging.WARNING)
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if name == "tensorflow":  # its own handler, if already added; the root one suffices
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    # Keras prints epochs with sys.stdout.write unless told to log them (as INFO, hidden here).
    import tf_keras

    tf_keras.utils.disable_interactive_logging()


@contextlib.contextmanager
def printed_to(path: Path | str) -> Iterator[Path]:
    """Send what is printed (not logged) inside the block to a file, e.g. keras-tuner's trial
    summaries; warnings still reach the console through logging."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle, contextlib.redirect_stdout(handle):
        yield path

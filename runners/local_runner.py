"""Run the pipeline locally with TFX's LocalDagRunner; the flags are those of beam_runner.py.

    python runners/local_runner.py [--train-steps N] ...

BeamDagRunner runs the components as the stages of one Beam job; LocalDagRunner runs them
one after another in this process, which is what TFX's own templates use and what makes a
failing component easiest to debug. Both share the MLMD store and its cache.
"""

from __future__ import annotations

import sys

from beam_runner import main  # the runners folder is on sys.path when run as a script

if __name__ == "__main__":
    sys.exit(main(runner="LocalDagRunner"))

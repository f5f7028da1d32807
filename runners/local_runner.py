"""Run the pipeline locally with TFX's LocalDagRunner; the flags are those of beam_runner.py.

    python runners/local_runner.py [--train-steps N] ...

LocalDagRunner runs the components one after another in this process, which is what TFX's
own templates use and what makes a failing component easiest to debug. Both runners share
the MLMD store and its cache.
"""

import sys

from runners.local_run import main

if __name__ == "__main__":
    sys.exit(main(runner="LocalDagRunner"))

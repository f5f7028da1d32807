"""Run the pipeline locally with TFX's BeamDagRunner: components as the stages of one Beam job.

    python runners/beam_runner.py [--train-steps N] [--direct_running_mode multi_processing] ...

The flags, the lock, crash recovery, progress and the run report live in runners/local_run.py.
"""

import sys

from runners.local_run import main

if __name__ == "__main__":
    sys.exit(main(runner="BeamDagRunner"))

"""python -m lineage: where a model came from, what a data set trained, what changed."""

import sys

from lineage.command import main

sys.exit(main())

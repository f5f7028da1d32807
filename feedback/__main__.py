"""python -m feedback: served requests and their later outcomes become the next span."""

import sys

from feedback.join import main

sys.exit(main())

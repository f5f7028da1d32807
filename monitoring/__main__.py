"""python -m monitoring: is live traffic still what the served model was trained on?"""

import sys

from monitoring.monitor import main

sys.exit(main())

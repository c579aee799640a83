"""``python -m lnn_control.cli VERB ...``: the ``lnn-control`` console script without installing it."""

import sys

from lnn_control.cli import main

sys.exit(main())

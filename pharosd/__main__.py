"""``python -m pharosd``: same as the ``pharosd`` console script."""

import sys

from pharosd.cli import main

sys.exit(main())

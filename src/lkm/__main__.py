"""``python -m lkm``: the same multi-call entry point as the ``lkm`` console script."""

import sys

from lkm.cli import main

sys.exit(main())

"""``python -m asif_qdrant.cli``: the ``asif`` command."""

import sys

from . import main

sys.exit(main(prog_name="asif"))

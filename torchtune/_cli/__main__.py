"""``python -m torchtune._cli`` runs the ``tune`` command."""

import sys

from torchtune._cli.tune import main

sys.exit(main())

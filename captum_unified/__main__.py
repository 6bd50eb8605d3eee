"""``python -m captum_unified`` runs the command line (see :mod:`captum_unified.cli`)."""

import sys

from captum_unified.cli import main

sys.exit(main())

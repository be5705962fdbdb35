"""``python -m ampczoo ...`` = the ``ampczoo`` command (see :mod:`ampczoo.cli`)."""

import sys

from ampczoo.cli import main

sys.exit(main())

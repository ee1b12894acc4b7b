"""``python -m minitvm.cli``: the ``minitvm`` command."""
import sys

from . import main

sys.exit(main())

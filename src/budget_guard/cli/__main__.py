"""``python -m budget_guard.cli``: the ``budget-guard`` command."""

import sys

from budget_guard.cli import main

sys.exit(main())

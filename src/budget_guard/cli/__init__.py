"""The ``budget-guard`` command (also ``python -m budget_guard.cli``).

``command`` parses it and runs ``serve`` and ``check``; ``usage`` and ``limits`` read and
change the store from a terminal, with no server needed.
"""

from __future__ import annotations

from budget_guard.cli.command import main

__all__ = ["main"]

"""One line about an unexpected exception, for logs that carry no stack trace.

A stack trace is a map of the code, and through the messages and source lines of its frames a
channel for whatever a client sent; budget-guard's logs carry none. Operators still need to
know what failed and where: the type of the exception and the innermost frame it was raised
in (file, line and function) say that in one line.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["describe"]


def describe(error: BaseException) -> str:
    """``"KeyError at memory.py:120 in _add"``; just the type when it was never raised."""
    frame = error.__traceback__
    if frame is None:
        return type(error).__name__
    while frame.tb_next is not None:
        frame = frame.tb_next
    code = frame.tb_frame.f_code
    where = f"{Path(code.co_filename).name}:{frame.tb_lineno} in {code.co_name}"
    return f"{type(error).__name__} at {where}"

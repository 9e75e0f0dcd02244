"""A context variable set for the duration of a `with` block (attention recording, context memory)."""
from __future__ import annotations

import contextlib
import contextvars


@contextlib.contextmanager
def scoped(var: contextvars.ContextVar, value):
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)

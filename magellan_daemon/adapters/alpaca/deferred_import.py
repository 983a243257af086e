"""A third-party module's ``import`` of a heavy dependency, deferred to its first use.

alpaca-py's ``alpaca.trading.requests`` imports pandas at its top for one validator (the
dates of ``GetCorporateAnnouncementsRequest``, a request the daemon never builds). pandas
(numpy under it) is 0.18-0.21 s of imports (``python -X importtime``) and 58 MiB of RSS (a
bare interpreter with and without it), for nothing. ``deferred("pandas")`` is a ``with``
block inside which ``import pandas`` binds a stand-in instead: the first attribute read on
it imports the real pandas (the normal way) and forwards every read to it from then on, so
nothing changes for alpaca-py but when pandas is imported. The stand-in lives only in the
namespaces of the modules imported inside the block; once it ends, ``sys.modules`` holds no
trace of it and any later ``import pandas`` (the embedded simulator's, say) is the ordinary
one.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _StandIn(types.ModuleType):
    """Imports the module it stands for on the first attribute read, then forwards."""

    def __getattr__(self, attr: str) -> Any:
        name = self.__name__
        if sys.modules.get(name) is self:
            # Read inside the ``deferred`` block: the deferral would be wrong (the module is
            # used at import time), so say so rather than import it behind the block's back.
            raise ImportError(f"{name}.{attr} read while the import of {name} is deferred")
        return getattr(importlib.import_module(name), attr)


@contextmanager
def deferred(name: str) -> Iterator[None]:
    """Inside the block, ``import name`` binds a stand-in that imports ``name`` on first use
    (nothing is deferred when ``name`` is imported already)."""
    if name in sys.modules:
        yield
        return
    stand_in = _StandIn(name)
    sys.modules[name] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]

"""Binary searches in the simulator's integer-second time columns, with integer keys.

``np.searchsorted`` on an int64 column with a float key (what ``datetime.timestamp()``
returns) first casts the whole column to float64: tens of microseconds on every call for a
series of a few months of minutes, against one or two with an integer key. The columns hold
whole seconds, so the float key is replaced by the integer that selects the same index.
"""

from __future__ import annotations

import math

import numpy as np


def first_at_or_after(stamps: np.ndarray, t: float) -> int:
    """The first index whose stamp is >= ``t`` (``searchsorted`` side "left")."""
    return int(np.searchsorted(stamps, math.ceil(t), "left"))


def first_after(stamps: np.ndarray, t: float) -> int:
    """The first index whose stamp is > ``t`` (``searchsorted`` side "right")."""
    return int(np.searchsorted(stamps, math.floor(t), "right"))

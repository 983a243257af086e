"""The integer-key searches select exactly what numpy's float-key searches do (pure)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from magellan_sim.market.seek import first_after, first_at_or_after


@given(
    st.lists(st.integers(0, 10_000), max_size=60).map(sorted),
    st.floats(-10.0, 10_010.0, allow_nan=False),
)
def test_the_integer_key_selects_the_float_keys_index(stamps: list[int], t: float) -> None:
    column = np.array(stamps, dtype=np.int64)
    assert first_at_or_after(column, t) == int(np.searchsorted(column, t, "left"))
    assert first_after(column, t) == int(np.searchsorted(column, t, "right"))

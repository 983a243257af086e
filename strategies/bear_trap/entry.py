"""Bear Trap's entry rule: the values a bar is judged on and the filters in spec order."""

from __future__ import annotations

from strategies.api.model import Bar
from strategies.bear_trap.params import BearTrapParams
from strategies.bear_trap.state import SymbolState


def entry_values(st: SymbolState, bar: Bar, stop_atr_multiple: float) -> dict[str, float | None]:
    """The values an entry is judged on (also the evaluation record's values)."""
    tracker = st.session
    rng = bar.high - bar.low
    atr, mean = st.atr.value, st.volume.value
    values: dict[str, float | None] = {
        "session_open": tracker.open,
        "session_low_prior": tracker.prior_low,
        "drawdown_pct": None,
        "wick_ratio": (min(bar.open, bar.close) - bar.low) / rng if rng > 0 else None,
        "body_ratio": abs(bar.close - bar.open) / rng if rng > 0 else None,
        "volume_ratio": bar.volume / mean if mean else None,
        "atr": atr,
        "stop": None if atr is None else bar.low - stop_atr_multiple * atr,
    }
    if tracker.open:
        values["drawdown_pct"] = (bar.close - tracker.open) / tracker.open
    return values


def universe_filter(p: BearTrapParams, bar: Bar, volume_mean: float) -> str:
    """The config's cheap universe filters (price range, volume mean): why this bar's symbol
    is no candidate now, or ""."""
    if bar.close < p.min_price or (p.max_price is not None and bar.close > p.max_price):
        return f"universe filter: price {bar.close:.4g} outside [{p.min_price:g}, {p.max_price}]"
    if volume_mean < p.min_avg_volume:
        return f"universe filter: volume mean {volume_mean:.0f} < {p.min_avg_volume:g}"
    return ""


def first_failing_filter(
    p: BearTrapParams, st: SymbolState, bar: Bar, v: dict[str, float | None]
) -> str:
    """Why this bar is no entry (the first filter it fails), or "" when it is one."""
    if st.atr.value is None or st.volume.value is None:
        return "warming up (ATR or volume mean not yet full)"
    outside = universe_filter(p, bar, st.volume.value)
    if outside:
        return outside
    prior_low, drop = v["session_low_prior"], v["drawdown_pct"]
    if prior_low is None or drop is None:
        return "first bar of the session"
    if not drop <= -p.min_drop_pct:
        return f"not down {100 * p.min_drop_pct:g}% ({100 * drop:+.1f}%)"
    if not bar.low < prior_low:
        return f"no trap (low {bar.low:.4g} >= prior low {prior_low:.4g})"
    if not bar.close > prior_low:
        return f"no reclaim (close {bar.close:.4g} <= prior low {prior_low:.4g})"
    wick, body, vol_ratio = v["wick_ratio"], v["body_ratio"], v["volume_ratio"]
    if wick is None or body is None:
        return "zero range"
    if not wick >= p.min_wick_ratio:
        return f"wick {wick:.2f} < {p.min_wick_ratio:g}"
    if not body >= p.min_body_ratio:
        return f"body {body:.2f} < {p.min_body_ratio:g}"
    # Compared as volume >= k * mean (not the ratio) so the rule is exactly the spec's.
    mean = st.volume.value
    if not bar.volume >= p.volume_multiple * mean:
        return f"volume {vol_ratio or 0:.2f}x < {p.volume_multiple:g}x"
    stop = v["stop"]
    assert stop is not None
    if not bar.close > stop:
        return f"close {bar.close:.4g} <= stop {stop:.4g}"
    return ""


# -- the open trade -------------------------------------------------------------------

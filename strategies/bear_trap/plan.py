"""Bear Trap's trade plan for one symbol: levels fixed at entry, fills, broker stop state."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

# The leg of the market exit sent when the stop level is crossed with no stop resting: never
# to be confused with the resting stop's ``PROTECTIVE_STOP_LEG`` (a refused market exit once
# read as a stop and stayed pending forever).
STOP_EXIT_LEG = "stop_exit"
# Exits that sell part of the position: the rest stays under the stop while they work.
PARTIAL_EXIT_LEGS = frozenset({"tp1", "tp2"})


def same_stop_price(a: float, b: float) -> bool:
    """Whether two stop prices are the same order price: the broker's stop rests at our level
    rounded to its tick (a cent, or 0.0001 below $1), so closer than half a tick is equal."""
    tick = 0.01 if min(a, b) >= 1 else 0.0001
    return abs(a - b) < tick / 2 + 1e-12


def exit_split(entry_qty: int, tp1_fraction: float, tp2_fraction: float) -> tuple[int, int, int]:
    """``(tp1, tp2, runner)`` shares for an entry of ``entry_qty``: TP1 and TP2 are floored,
    the runner takes the rest, so the three always sum to ``entry_qty``."""
    if entry_qty <= 0:
        return 0, 0, 0
    tp1 = math.floor(entry_qty * tp1_fraction)
    tp2 = math.floor(entry_qty * tp2_fraction)
    return tp1, tp2, entry_qty - tp1 - tp2


class TradePlan:
    """One trade from its signal to flat. Mutable; serialises to a plain dict.

    ``stop_order`` mirrors the protective stop at the broker as this strategy last asked for
    it: ``{"signal_time": ISO of the place intent, "qty", "price"}``, or None when none rests.
    ``stop_requests`` counts the stop intents the router has not reported on yet; when it is
    back at 0, the last report (what really rests) replaces ``stop_order``.
    ``exit_pending``: ``{"leg", "signal_time" (ISO), "qty", "filled"}`` while a sell is out
    (plus ``"stop_before"`` for TP2, the stop level to go back to if its sell never goes out).
    """

    __slots__ = (
        "entry_pending",
        "entry_price",
        "entry_qty",
        "entry_time",
        "exit_pending",
        "position",
        "session_date",
        "session_high",
        "signal_time",
        "stop",
        "stop_order",
        "stop_requests",
        "stop_touched",
        "support",
        "tp1_done",
        "tp1_level",
        "tp2_done",
        "tp2_level",
    )

    def __init__(self, **fields: Any) -> None:
        for name in self.__slots__:
            setattr(self, name, fields[name])

    @classmethod
    def at_signal(
        cls,
        *,
        signal_time: datetime,
        session_date: date,
        support: float,
        stop: float,
        session_high: float,
        tp1_target_fraction: float,
    ) -> TradePlan:
        """The plan as the entry intent leaves: levels from the signal bar's close are
        provisional until the first fill fixes them at the fill price."""
        return cls(
            signal_time=signal_time,
            session_date=session_date,
            support=support,
            stop=stop,
            session_high=session_high,
            tp1_level=session_high,
            tp2_level=session_high,
            entry_price=None,
            entry_qty=0,
            entry_time=None,
            position=0,
            tp1_done=False,
            tp2_done=False,
            stop_order=None,
            stop_requests=0,
            stop_touched=False,
            entry_pending=True,
            exit_pending=None,
        )

    @classmethod
    def orphan(cls, position: int, now: datetime, resting_stop: Any) -> TradePlan:
        """A plan for shares the ledger holds but no snapshot explains (lost state): no
        targets, the stop that rests (if any) kept, the time stop counted from ``now``."""
        stop = float(resting_stop.stop_price) if resting_stop is not None else 0.0
        signal = resting_stop.signal_time if resting_stop is not None else now
        plan = cls.at_signal(
            signal_time=signal,
            session_date=now.date(),
            support=stop,
            stop=stop,
            session_high=math.inf,
            tp1_target_fraction=0.5,
        )
        plan.entry_pending = False
        plan.entry_qty = plan.position = position
        plan.entry_time = now
        plan.tp1_done = plan.tp2_done = True
        return plan

    def add_entry_fill(
        self, qty: int, price: float | None, time: datetime, tp1_target_fraction: float
    ) -> None:
        """Book one entry fill increment: average entry price, qty, TP levels, entry time."""
        fill_price = price if price is not None and math.isfinite(price) else None
        if fill_price is not None:
            if self.entry_price is None or self.entry_qty <= 0:
                self.entry_price = fill_price
            else:
                total = self.entry_price * self.entry_qty + fill_price * qty
                self.entry_price = total / (self.entry_qty + qty)
        self.entry_qty += qty
        self.position += qty
        if self.entry_time is None:
            self.entry_time = time
        self.entry_pending = False
        entry = self.entry_price
        if entry is not None:
            self.tp1_level = entry + tp1_target_fraction * (self.session_high - entry)
        self.tp2_level = self.session_high

    def shares_to_protect(self) -> int | None:
        """Shares the resting stop must cover: all held, less what a pending TP1/TP2 sell
        will sell; None while a final exit is pending (its stop was cancelled on purpose, to
        free the shares for the sell)."""
        pending = self.exit_pending
        if pending is None:
            return self.position
        if pending["leg"] not in PARTIAL_EXIT_LEGS:
            return None
        return max(0, self.position - (pending["qty"] - pending["filled"]))

    def set_resting_stop(self, signal_time: datetime, qty: int, price: float | None) -> None:
        """What the router reported rests at the broker (0 shares: no stop)."""
        if qty <= 0 or price is None:
            self.stop_order = None
        else:
            self.stop_order = {"signal_time": signal_time.isoformat(), "qty": qty, "price": price}

    def values(self) -> dict[str, float | None]:
        """The plan's numbers for an evaluation record."""
        return {
            "entry": self.entry_price,
            "entry_qty": float(self.entry_qty),
            "position": float(self.position),
            "stop": self.stop,
            "support": self.support,
            "tp1": self.tp1_level,
            "tp2": self.tp2_level,
        }

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state (datetimes and the date as ISO text)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["signal_time"] = self.signal_time.isoformat()
        out["session_date"] = self.session_date.isoformat()
        out["entry_time"] = None if self.entry_time is None else self.entry_time.isoformat()
        out["stop_order"] = None if self.stop_order is None else dict(self.stop_order)
        out["exit_pending"] = None if self.exit_pending is None else dict(self.exit_pending)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TradePlan:
        """Rebuild from ``to_dict`` output."""
        fields = {"stop_requests": 0, **data}  # snapshots before stop reports had no counter
        fields["signal_time"] = datetime.fromisoformat(data["signal_time"])
        fields["session_date"] = date.fromisoformat(data["session_date"])
        entry_time = data["entry_time"]
        fields["entry_time"] = None if entry_time is None else datetime.fromisoformat(entry_time)
        for key in ("stop_order", "exit_pending"):
            fields[key] = None if data[key] is None else dict(data[key])
        return cls(**fields)

"""Bear Trap's open trade: its exits on each bar and on the clock alone (pure).

The decisions where the spec is silent (exit quantities, the order of several exits on one
bar, no exit while another is outstanding, a stop short of the shares held placed again) are
listed in ``strategy``'s docstring; each has a table test.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from strategies.api.model import Bar, Decision, Evaluation, Intent, Step
from strategies.api.session import Session
from strategies.bear_trap.orders import PlanOrders
from strategies.bear_trap.params import BearTrapParams
from strategies.bear_trap.plan import STOP_EXIT_LEG, TradePlan, exit_split
from strategies.bear_trap.state import BAR_LENGTH


class TradeExits:
    """When and how an open Bear Trap trade sells: on a bar (``manage``), on the clock alone
    (``on_clock``), and the sells themselves (``final``)."""

    def __init__(self, name: str, params: BearTrapParams, orders: PlanOrders) -> None:
        self.name = name
        self.params = params
        self.eod = timedelta(minutes=params.eod_minutes_before_close)
        self.time_stop = timedelta(minutes=params.time_stop_minutes)
        self._orders = orders

    def manage(self, plan: TradePlan, bar: Bar, now: datetime, session: Session) -> Step:
        """The open trade on a completed bar: the stop, a pending exit, the time stop, the end
        of day, the profit targets, a stop short of the shares held; at most one exit."""
        values = plan.values()
        if plan.position <= 0:
            return self._hold(bar, "entry order pending", values)
        if plan.stop_touched and plan.exit_pending is None:
            # The stop was touched one bar ago and the shares are still here: sell them.
            return self.final(plan, bar, STOP_EXIT_LEG, "stop touched and not filled", values)
        if bar.low <= plan.stop:
            if plan.stop_order is not None:
                plan.stop_touched = True
                reason = f"stop touched: resting stop order exits (low {bar.low:.4g})"
                return self._hold(bar, reason, values)
            if plan.exit_pending is None:
                reason = f"stop: low {bar.low:.4g} <= {plan.stop:.4g}, no resting stop"
                return self.final(plan, bar, STOP_EXIT_LEG, reason, values)
        if plan.exit_pending is not None:
            reason = f"exit pending ({plan.exit_pending['leg']})"
            short = stop_shortfall(plan)  # the rest of a TP1/TP2 sell stays protected
            if short:
                reason += f"; {short}: stop for the rest"
                intents = self._orders.protect(plan, bar.symbol, reason)
                evaluation = self._eval(bar, "hold", reason, values)
                return Step(intents=tuple(intents), evaluations=(evaluation,))
            return self._hold(bar, reason, values)
        if plan.entry_time is not None and now >= plan.entry_time + self.time_stop:
            reason = f"time stop: {self.params.time_stop_minutes} min after entry"
            return self.final(plan, bar, "time_stop", reason, values)
        if now >= session.close - self.eod:
            reason = f"eod: {self.params.eod_minutes_before_close} min before the close"
            return self.final(plan, bar, "eod", reason, values)
        taken = self._take_profit(plan, bar, values)
        if taken is not None:
            return taken
        short = stop_shortfall(plan)
        if short:
            reason = f"{short}: stop for {plan.position} shares"
            intents = self._orders.protect(plan, bar.symbol, reason)
            return Step(
                intents=tuple(intents), evaluations=(self._eval(bar, "hold", reason, values),)
            )
        return self._hold(bar, "holding", values)

    def on_clock(
        self, plans: Iterable[tuple[str, TradePlan]], now: datetime, session: Session | None
    ) -> Step:
        """The time alone: sell what the time stop or the end of day says must go, for
        symbols whose bars stopped coming (a thin stock may print no bar at 15:54). Bars do
        the same when they arrive; an exit already pending is never sent twice."""
        if session is None or not session.open < now <= session.close:
            return Step()
        minute_start = now.replace(second=0, microsecond=0) - BAR_LENGTH
        steps: list[Step] = []
        for symbol, plan in plans:
            if plan.position <= 0:
                continue
            if plan.exit_pending is not None:
                short = stop_shortfall(plan)  # the rest of a TP1/TP2 sell (no bar)
                if short:
                    reason = f"exit pending; {short}: stop for the rest (no bar)"
                    steps.append(Step(intents=tuple(self._orders.protect(plan, symbol, reason))))
                continue
            if plan.entry_time is not None and now >= plan.entry_time + self.time_stop:
                leg, reason = (
                    "time_stop",
                    f"time stop: {self.params.time_stop_minutes} min after entry",
                )
            elif now >= session.close - self.eod:
                leg = "eod"
                reason = f"eod: {self.params.eod_minutes_before_close} min before the close"
            else:
                short = stop_shortfall(plan)
                if short:
                    reason = f"{short}: stop for {plan.position} shares (no bar)"
                    steps.append(Step(intents=tuple(self._orders.protect(plan, symbol, reason))))
                continue
            marker = Bar(
                symbol=symbol,
                timeframe="1Min",
                t=minute_start,
                open=math.nan,
                high=math.nan,
                low=math.nan,
                close=math.nan,
                volume=0.0,
            )
            steps.append(self.final(plan, marker, leg, f"{reason} (no bar)", plan.values()))
        return Step(
            intents=tuple(i for s in steps for i in s.intents),
            evaluations=tuple(e for s in steps for e in s.evaluations),
        )

    def _take_profit(
        self, plan: TradePlan, bar: Bar, values: dict[str, float | None]
    ) -> Step | None:
        tp1, tp2, _ = exit_split(plan.entry_qty, self.params.tp1_fraction, self.params.tp2_fraction)
        if not plan.tp1_done and bar.high >= plan.tp1_level:
            plan.tp1_done = True
            reason = f"tp1: high {bar.high:.4g} >= {plan.tp1_level:.4g}"
            return self._partial(plan, bar, "tp1", tp1, plan.stop, reason, values)
        if plan.tp1_done and not plan.tp2_done and bar.high >= plan.tp2_level:
            plan.tp2_done = True
            reason = f"tp2: high {bar.high:.4g} >= {plan.tp2_level:.4g}; stop to support"
            stop_before, plan.stop = plan.stop, plan.support
            step = self._partial(plan, bar, "tp2", tp2, plan.support, reason, values)
            if plan.exit_pending is not None:
                plan.exit_pending["stop_before"] = stop_before
            return step
        return None

    def _partial(
        self,
        plan: TradePlan,
        bar: Bar,
        leg: str,
        qty: int,
        stop_price: float,
        reason: str,
        values: dict[str, float | None],
    ) -> Step:
        qty = min(qty, plan.position)
        if qty >= plan.position:
            return self.final(plan, bar, leg, reason, values)
        intents: list[Intent] = []
        left = plan.position - qty
        if plan.stop_order is not None:
            intents.append(
                self._orders.stop_intent(plan, bar.symbol, "replace_stop", reason, left, stop_price)
            )
        if qty > 0:
            intents.append(self._sell(plan, bar, leg, qty, reason))
        decision: Decision = "exit" if qty > 0 else "hold"
        if qty == 0:
            reason += " (0 shares to sell)"
        return Step(
            intents=tuple(intents), evaluations=(self._eval(bar, decision, reason, values),)
        )

    def final(
        self, plan: TradePlan, bar: Bar, leg: str, reason: str, values: dict[str, float | None]
    ) -> Step:
        """Sell every share held (the stop's cancel first, when one rests)."""
        intents: list[Intent] = []
        if plan.stop_order is not None:
            intents.append(self._orders.stop_intent(plan, bar.symbol, "cancel_stop", reason))
            plan.stop_order = None
        plan.stop_touched = False
        intents.append(self._sell(plan, bar, leg, plan.position, reason))
        return Step(intents=tuple(intents), evaluations=(self._eval(bar, "exit", reason, values),))

    def _sell(self, plan: TradePlan, bar: Bar, leg: str, qty: int, reason: str) -> Intent:
        plan.exit_pending = {"leg": leg, "signal_time": bar.t.isoformat(), "qty": qty, "filled": 0}
        return Intent(
            strategy=self.name,
            symbol=bar.symbol,
            action="sell",
            leg=leg,
            signal_time=bar.t,
            reason=reason,
            qty=qty,
        )

    def _eval(
        self, bar: Bar, decision: Decision, reason: str, values: dict[str, float | None]
    ) -> Evaluation:
        return evaluation(self.name, bar, decision, reason, values)

    def _hold(self, bar: Bar, reason: str, values: dict[str, float | None]) -> Step:
        return Step(evaluations=(self._eval(bar, "hold", reason, values),))


def evaluation(
    strategy: str, bar: Bar, decision: Decision, reason: str, values: dict[str, float | None]
) -> Evaluation:
    """The record of what ``strategy`` decided on ``bar`` and why."""
    return Evaluation(
        strategy=strategy,
        symbol=bar.symbol,
        bar_time=bar.t,
        decision=decision,
        reason=reason,
        values=values,
    )


def stop_shortfall(plan: TradePlan) -> str:
    """Why the resting stop does not cover the shares it must ("" when it does, while stop
    intents are still out, or while a final exit is pending): none rests (its placement was
    refused, it was cancelled), or it rests for fewer shares (a resize after a later entry
    fill was refused)."""
    want = plan.shares_to_protect()
    if plan.stop_requests > 0 or not want:
        return ""
    if plan.stop_order is None:
        return "no resting stop"
    if plan.stop_order["qty"] < want:
        return f"the stop rests for {plan.stop_order['qty']} shares only"
    return ""

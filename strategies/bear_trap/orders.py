"""Bear Trap's bookkeeping of its own orders: fills, ended orders, stop reports, restarts.

Pure functions of a ``TradePlan`` and what the daemon reports (``OrderUpdate``,
``HoldingView``), returning the stop intents the plan needs. ``stop_order`` is the stop the
strategy last asked for; ``stop_requests`` counts the stop intents not yet reported on, and
when it is back at 0 the router's report of what really rests replaces ``stop_order``. While
stop intents are out, an ended stop order says nothing (their report will).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from strategies.api.model import PROTECTIVE_STOP_LEG, HoldingView, Intent, OrderUpdate
from strategies.bear_trap.plan import TradePlan, same_stop_price

log = logging.getLogger(__name__)


class PlanOrders:
    """The order bookkeeping of one strategy's trade plans."""

    def __init__(self, name: str, tp1_target_fraction: float) -> None:
        self.name = name
        self.tp1_target_fraction = tp1_target_fraction

    def stop_intent(
        self,
        plan: TradePlan,
        symbol: str,
        action: str,
        reason: str,
        qty: int | None = None,
        price: float | None = None,
    ) -> Intent:
        """A stop intent about the plan's stop order (set to ``qty`` at ``price`` when given);
        counted as a request the router will report on."""
        order = plan.stop_order
        assert order is not None
        if qty is not None and price is not None:
            order["qty"], order["price"] = qty, price
        plan.stop_requests += 1
        cancel = action == "cancel_stop"
        return Intent(
            strategy=self.name,
            symbol=symbol,
            action=action,  # type: ignore[arg-type]
            leg=PROTECTIVE_STOP_LEG,
            signal_time=datetime.fromisoformat(order["signal_time"]),
            reason=reason,
            qty=None if cancel else order["qty"],
            stop_price=None if cancel else order["price"],
        )

    def on_entry_fill(self, plan: TradePlan, update: OrderUpdate) -> list[Intent]:
        if update.leg != "entry" or update.signal_time != plan.signal_time or update.qty <= 0:
            log.error("%s %s: unexpected buy update %r", self.name, update.symbol, update)
            return []
        plan.add_entry_fill(update.qty, update.price, update.time, self.tp1_target_fraction)
        reason = f"protective stop for {plan.position} shares"
        if plan.stop_order is None:
            plan.stop_order = {
                "signal_time": plan.signal_time.isoformat(),
                "qty": plan.position,
                "price": plan.stop,
            }
            action = "place_stop"
        else:
            plan.stop_order["qty"] = plan.position
            action = "replace_stop"
        return [self.stop_intent(plan, update.symbol, action, reason)]

    def on_exit_fill(self, plan: TradePlan, update: OrderUpdate) -> list[Intent]:
        if update.qty > plan.position:
            log.error(
                "%s %s: sell fill of %d exceeds the %d held; booking flat",
                self.name,
                update.symbol,
                update.qty,
                plan.position,
            )
        plan.position = max(0, plan.position - update.qty)
        pending = plan.exit_pending
        order = plan.stop_order
        # A pending market sell is matched first: its (leg, signal_time) is the more specific.
        if pending is not None and matches(pending, update):
            pending["filled"] += update.qty
            # The router may have sent fewer shares than asked (the rest held by other
            # orders): the exit is over when its order is, whatever was asked.
            wanted = pending["qty"] if update.order_qty is None else update.order_qty
            if pending["filled"] >= wanted or update.filled_qty >= wanted:
                plan.exit_pending = None
        elif order is not None and is_stop_order(order, update):
            order["qty"] = max(0, order["qty"] - update.qty)
            if order["qty"] == 0:
                plan.stop_order = None
        if plan.position == 0:
            plan.exit_pending = None
            plan.stop_order = None
            plan.stop_touched = False
        return []

    def on_terminal(self, plan: TradePlan, update: OrderUpdate) -> list[Intent]:
        if update.leg == "entry":
            if update.signal_time == plan.signal_time:
                plan.entry_pending = False
            return []
        order = plan.stop_order
        if update.leg == PROTECTIVE_STOP_LEG:
            # A stop order ended unfilled. While stop intents are out, their report tells what
            # rests; otherwise it went away outside our requests: placed again next bar.
            if plan.stop_requests == 0 and order is not None and is_stop_order(order, update):
                plan.stop_order = None
            return []
        pending = plan.exit_pending
        if pending is None or not matches(pending, update):
            return []
        plan.exit_pending = None
        if pending["filled"] == 0:
            # Nothing of this exit happened: TP1/TP2 are decided again on a later bar (and
            # TP2's raised stop goes back); the final exits are re-decided by the next bar or
            # clock tick anyway.
            if pending["leg"] == "tp1":
                plan.tp1_done = False
            elif pending["leg"] == "tp2":
                plan.tp2_done = False
                plan.stop = pending.get("stop_before", plan.stop)
        why = f" ({update.reason})" if update.reason else ""
        reason = f"{update.leg} {update.kind}{why}: protective stop for {plan.position} shares"
        return self.protect(plan, update.symbol, reason)

    def on_stop_report(self, plan: TradePlan, update: OrderUpdate) -> list[Intent]:
        plan.stop_requests = max(0, plan.stop_requests - 1)
        if plan.stop_requests > 0:
            return []  # a later report says what rests in the end
        plan.set_resting_stop(update.signal_time, update.qty, update.price)
        if plan.position <= 0 and plan.stop_order is not None and plan.exit_pending is None:
            # Nothing left to protect: a resting stop would sell shares we do not hold.
            return [self.stop_intent(plan, update.symbol, "cancel_stop", "flat: stop not needed")]
        return []

    def protect(self, plan: TradePlan, symbol: str, reason: str) -> list[Intent]:
        """Intents that make the resting stop cover exactly the shares it must at
        ``plan.stop``: all held, less what a pending TP1/TP2 sell will sell."""
        want = plan.shares_to_protect()
        if plan.position <= 0 or not want or plan.stop_requests > 0:
            return []
        if plan.stop <= 0:
            return []  # no stop level known (an orphan position): the time stop exits it
        order = plan.stop_order
        if (
            order is not None
            and order["qty"] == want
            and same_stop_price(order["price"], plan.stop)
        ):
            return []
        action = "place_stop" if order is None else "replace_stop"
        if order is None:
            signal = plan.signal_time.isoformat()
            plan.stop_order = {"signal_time": signal, "qty": 0, "price": plan.stop}
        return [self.stop_intent(plan, symbol, action, reason, want, plan.stop)]

    def sync_plan(self, plan: TradePlan, view: HoldingView, now: datetime) -> list[Intent]:
        plan.stop_requests = 0
        stop = view.resting_stop()
        if stop is None:
            plan.stop_order = None
        else:
            plan.set_resting_stop(stop.signal_time, stop.remaining, stop.stop_price)
        if view.position != plan.position:
            log.warning(
                "%s %s: the ledger holds %d shares, the snapshot %d: taking the ledger's",
                self.name,
                view.symbol,
                view.position,
                plan.position,
            )
            if view.position > plan.position:
                plan.entry_qty += view.position - plan.position
                plan.entry_time = plan.entry_time or now
            plan.position = view.position
        sells = [o for o in view.open_orders if o.side == "sell" and o.leg != PROTECTIVE_STOP_LEG]
        plan.entry_pending = any(o.side == "buy" for o in view.open_orders)
        pending = plan.exit_pending
        if pending is not None and not any(
            o.leg == pending["leg"] and o.signal_time.isoformat() == pending["signal_time"]
            for o in sells
        ):
            plan.exit_pending = None  # it ended while we were down: decided again next bar
        if plan.position <= 0:
            if plan.stop_order is not None and plan.exit_pending is None:
                reason = "flat after restart: stop not needed"
                return [self.stop_intent(plan, view.symbol, "cancel_stop", reason)]
            return []
        return self.protect(plan, view.symbol, f"after restart: stop for {plan.position} shares")


def matches(pending: dict[str, Any], update: OrderUpdate) -> bool:
    return pending["leg"] == update.leg and pending["signal_time"] == update.signal_time.isoformat()


def is_stop_order(order: dict[str, Any], update: OrderUpdate) -> bool:
    return (
        update.leg == PROTECTIVE_STOP_LEG and order["signal_time"] == update.signal_time.isoformat()
    )

"""Corporate actions in the running daemon: splits and cash dividends, from the broker.

Where they come from: at each session's pre-open (and at startup, for ex-dates that passed
while the daemon was down) the broker's corporate-actions API (``GET
/v1/corporate-actions``, read by ``adapters.alpaca.market_data_reads``) is read for every symbol a
strategy watches, the ledger holds or a strategy filled in since the window's start (a
strategy watching the whole market: the symbols it holds or traded; a position sold flat
after an ex-date was still paid), each read retried like every read.

What happens on a split's ex-date, in this order:

1. The ledger applies it once (``Ledger.apply_split``, keyed by symbol and ex-date), after
   the broker confirms it: the account's position is the ledger's times the ratio, rounded
   down, or a ``SPLIT`` activity says so. The cash in lieu is the ``CIL`` activity's (or
   computed). While the broker still shows the old quantity the check waits and tries again
   every minute (until 30 minutes after the open), and the position watch does not report
   that difference (``pending_splits``). A broker that applies the split in the night is
   seen earlier: the position watch's first sight of a difference runs the check at once
   (``position_difference``), before its second read would report it.
2. Each strategy's state is re-based once (``StrategyRunner.rebase`` -> ``Strategy.rebase``):
   indicators and open trade plans on the new scale before the first bar of the session.
3. Each strategy is synced with the ledger (``Strategy.sync``): its post-split position, and
   its protective stop placed again at the re-based level (the broker cancels resting orders
   of the symbol before the open; a stop still resting is replaced with the new numbers).

A cash dividend is booked once, on its ex-date, as P&L of the strategies holding the symbol
at the start of the ex-date (``Ledger.apply_dividend``), at startup too for an ex-date the
daemon was down for (the holders then are counted back from the fills); the broker's
``DIV`` cash is never a position discrepancy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from magellan_core.clock import Clock
from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.errors import BrokerError
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.ports import Broker
from magellan_daemon.ledger.corporate import HoldersUnknown
from magellan_daemon.ledger.split_accounting import whole_shares
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.reconciliation.holdings import holding_views
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.tasks import spawn
from magellan_daemon.timefmt import NEW_YORK, session_date
from strategies.api.session import Session

log = logging.getLogger(__name__)
STARTUP_LOOKBACK = timedelta(days=10)  # ex-dates a restart still catches up on
RETRY_EVERY = timedelta(minutes=1)
WAIT_AFTER_OPEN = timedelta(minutes=30)
PRE_OPEN = timedelta(minutes=30)  # the check runs this long before each open
ACTIVITY_LOOKBACK = timedelta(days=5)


class CorporateActionWatch:
    """Reads the corporate actions of the symbols that matter and applies them."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        path: OrderPath[Broker],
        clock: Clock,
        runners: Mapping[str, StrategyRunner],
        watched: Callable[[], Mapping[str, set[str]]],
    ) -> None:
        self._ledger = ledger
        self._path = path
        self._clock = clock
        self._runners = runners
        self._watched = watched  # account -> symbols its strategies watch (not "*")
        self._waiting: dict[str, Decimal] = {}  # symbol -> ratio of a split not confirmed
        self._checking: asyncio.Task[None] | None = None
        self._checked_at: datetime | None = None

    def position_difference(self, account: str) -> None:
        """The position watch saw the broker differ from the ledger: check today's actions
        now, in a task of its own (one at a time), in case a split explains it."""
        if self._checking is not None and not self._checking.done():
            return
        now = self._clock.now()
        if self._checked_at is not None and now - self._checked_at < RETRY_EVERY:
            return  # a fill in flight also differs for a moment: one check a minute at most
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the daemon's loop (a unit test of the watch): no check
        self._checked_at = now
        self._checking = spawn(self._check_today(), name="corporate-actions-check")

    async def _check_today(self) -> None:
        today = self._today()
        try:
            await self.check(today, today)
        except BrokerError as exc:
            log.warning("corporate actions for %s: broker unreadable (%s)", today, exc)

    def pending_splits(self) -> Mapping[str, Decimal]:
        """Splits read for today that the broker has not confirmed yet (symbol -> ratio):
        a broker position already at the new quantity is explained by them."""
        return dict(self._waiting)

    async def pre_open(self, session: Session) -> None:
        """The scheduled check of one session's ex-date, tried again until the broker has
        applied every split or 30 minutes after the open."""
        while True:
            try:
                if await self.check(session.date, session.date):
                    return
            except BrokerError as exc:
                log.warning("corporate actions for %s: broker unreadable (%s)", session.date, exc)
            if self._clock.now() >= session.open + WAIT_AFTER_OPEN:
                log.warning(
                    "corporate actions for %s: the broker has not applied the split of %s "
                    "30 minutes after the open; reconciliation reports what differs",
                    session.date,
                    ", ".join(sorted(self._waiting)) or "nothing",
                )
                return
            await self._clock.sleep_until(self._clock.now() + RETRY_EVERY)

    async def catch_up(self) -> bool:
        """At startup: the actions of the last days up to today (a split the daemon was down
        for is applied, and every strategy re-based, before the warm-up). The strategies are
        not synced here: the startup's own sync follows."""
        today = session_date(self._clock.now())
        return await self.check(today - STARTUP_LOOKBACK, today, sync=False)

    async def check(self, start: date, end: date, *, sync: bool = True) -> bool:
        """Apply the actions with an ex-date from ``start`` to ``end``, oldest first. False
        while a split waits for the broker. ``sync``: each strategy holding a split symbol
        is synced with the ledger afterwards (its stop placed again)."""
        found: dict[tuple[str, date, str], CorporateAction] = {}
        # The window's start at 00:00 New York: a position sold flat since then (by a
        # whole-market strategy, or out of a changed universe) was still paid its dividend.
        since = datetime.combine(start, time(0), NEW_YORK)
        for account, symbols in sorted(self._symbols(since).items()):
            if not symbols:
                continue
            wanted = sorted(symbols)
            actions = await self._path.read(
                account, lambda b, s=wanted: b.corporate_actions(s, start, end)
            )
            for action in actions:
                if start <= action.ex_date <= end and action.ex_date <= self._today():
                    found[(action.symbol, action.ex_date, action.type)] = action
        done = True
        for action in sorted(found.values(), key=lambda a: (a.ex_date, a.symbol, a.type)):
            if action.is_split:
                done = await self._split(action, sync) and done
            else:
                self._dividend(action)
        return done

    # -- splits ------------------------------------------------------------------------

    async def _split(self, action: CorporateAction, sync: bool) -> bool:
        applied = False
        if not self._ledger.corporate_action_applied(action.symbol, action.ex_date, "split"):
            confirmed = await self._confirm(action)
            if confirmed is None:
                self._waiting[action.symbol] = action.ratio
                return False
            bookings = self._ledger.apply_split(
                action, self._clock.now(), confirmed, detail="confirmed by the broker"
            )
            applied = bookings is not None
            for b in bookings or ():
                log.info(
                    "split %s %s:%s (ex %s): %s %s -> %s shares, average %s -> %s, cash in lieu %s",
                    action.symbol,
                    _number(action.new_rate),
                    _number(action.old_rate),
                    action.ex_date,
                    b.strategy,
                    b.qty_before,
                    b.qty_after,
                    round(b.avg_before, 4),
                    round(b.avg_after, 4),
                    round(b.cash, 2),
                    extra={"fields": {"SYMBOL": action.symbol, "EVENT": "split"}},
                )
        self._waiting.pop(action.symbol, None)
        await self._rebase_strategies(action, sync, applied)
        return True

    async def _confirm(self, action: CorporateAction) -> dict[str, Decimal] | None:
        """The cash in lieu per account once the broker shows the split in every account
        holding the symbol; None while one still shows the old quantity."""
        cash: dict[str, Decimal] = {}
        for account in sorted(self._accounts()):
            held = self._ledger.net_positions(account).get(action.symbol, Decimal(0))
            if held <= 0:
                continue
            positions = await self._path.read(account, lambda b: b.positions())
            broker = sum((p.qty for p in positions if p.symbol == action.symbol), Decimal(0))
            expected = whole_shares(held, action.ratio)
            since = datetime.combine(action.ex_date, time(0), NEW_YORK) - ACTIVITY_LOOKBACK
            splits = await self._path.read(account, lambda b, t=since: b.activities("SPLIT", t))
            announced = any(
                a.symbol == action.symbol and a.date >= action.ex_date - ACTIVITY_LOOKBACK
                for a in splits
            )
            if broker != expected and not announced:
                if broker == held:
                    if action.symbol in self._waiting:
                        return None  # said once: the check tries again every minute
                    log.info(
                        "split %s (ex %s): the broker still holds %s (expected %s): waiting",
                        action.symbol,
                        action.ex_date,
                        broker,
                        expected,
                    )
                    return None
                log.warning(
                    "split %s (ex %s): the broker holds %s, the ledger %s, the split makes it "
                    "%s: applied; reconciliation reports what differs",
                    action.symbol,
                    action.ex_date,
                    broker,
                    held,
                    expected,
                )
            lieu = await self._path.read(account, lambda b, t=since: b.activities("CIL", t))
            paid = [a.net_amount for a in lieu if a.symbol == action.symbol]
            if paid:
                cash[account] = sum(paid, Decimal(0))
        return cash

    async def _rebase_strategies(self, action: CorporateAction, sync: bool, applied: bool) -> None:
        """Each strategy re-based once; one that changed now (re-based, or the ledger's
        position just split) is synced with the ledger when ``sync`` (a later check of the
        same split leaves a strategy alone: its stop intents may be in flight)."""
        ratio = float(action.ratio)
        for runner in self._runners.values():
            rebased = await runner.rebase(action.symbol, action.ex_date, ratio)
            if rebased:
                log.info(
                    "strategy %s: %s state re-based for the split of %s (ratio %g)",
                    runner.name,
                    action.symbol,
                    action.ex_date,
                    ratio,
                )
            changed = sync and (rebased or applied)
            views = holding_views(self._ledger, runner.name) if changed else {}
            if action.symbol in views:
                intents = await runner.sync(views)
                if intents:
                    log.info(
                        "strategy %s: %d intents after the split of %s",
                        runner.name,
                        intents,
                        action.symbol,
                    )

    # -- dividends ---------------------------------------------------------------------

    def _dividend(self, action: CorporateAction) -> None:
        """Booked once, to the holders at the start of the ex-date: the broker paid them
        then, whether or not the daemon ran (a past ex-date is caught up from the fills)."""
        late = action.ex_date < self._today()
        detail = "from the broker, caught up after the ex-date" if late else "from the broker"
        try:
            bookings = self._ledger.apply_dividend(action, self._clock.now(), detail)
        except HoldersUnknown as exc:
            log.warning(
                "dividend %s %s/share (ex %s) not booked: the shares held at the ex-date "
                "are not known (%s); the broker credited it, the ledger's P&L misses it",
                action.symbol,
                _number(action.rate),
                action.ex_date,
                exc,
                extra={"fields": {"SYMBOL": action.symbol, "EVENT": "dividend"}},
            )
            return
        for b in bookings or ():
            log.info(
                "dividend %s %s/share (ex %s): %s %s %s shares: %s booked%s",
                action.symbol,
                _number(action.rate),
                action.ex_date,
                b.strategy,
                "held" if late else "holds",
                b.qty_before,
                round(b.cash, 2),
                " (caught up)" if late else "",
                extra={"fields": {"SYMBOL": action.symbol, "EVENT": "dividend"}},
            )

    # -- helpers -----------------------------------------------------------------------

    def _today(self) -> date:
        return session_date(self._clock.now())

    def _accounts(self) -> set[str]:
        return set(self._watched()) | {p.account for p in self._ledger.positions()}

    def _symbols(self, since: datetime) -> dict[str, set[str]]:
        """Per account: the symbols watched, held, with open orders or filled since
        ``since``."""
        out = {account: set(symbols) for account, symbols in self._watched().items()}
        for account in {p.account for p in self._ledger.positions()} | set(out):
            out.setdefault(account, set()).update(self._ledger.symbols_filled_since(account, since))
        for p in self._ledger.positions():
            out.setdefault(p.account, set()).add(p.symbol)
        for o in self._ledger.orders(open_only=True):
            out.setdefault(o.account, set()).add(o.symbol)
        return out


def _number(value: Decimal) -> str:
    """A rate as written (10, not 1E+1; 0.25)."""
    return format(value.normalize(), "f")

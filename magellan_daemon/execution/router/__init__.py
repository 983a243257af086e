"""The order router: lanes, dispatch, and the entry / exit / stop / flatten decisions.

Intents are handed over with ``submit`` and return at once: nothing a strategy, a stream
consumer or a job does ever waits for the broker. Each (account, symbol) has one lane, a
queue worked by one task, so the intents of one symbol run in the order they were emitted
(a stop is reduced before the sell it makes room for) while other symbols run alongside and
one symbol's failure never stops another's. No strategy code runs in a lane: what the router
has to tell a strategy (not sent, the stop that rests now) is posted to the strategy's own
queue through the event sink, and what the strategy answers comes back to the lane's queue.

Each step is judged on the facts of the moment, not on whether the step before it worked:

- an entry passes the strategy's gates and buying power (``entry_gate.decide_entry``, pure),
  and its order row is written in the same breath, so concurrent lanes reserve slots and
  dollars; exits and stops skip the gates: a halt blocks new positions, never the way out;
- a sell is at most the strategy's own shares minus what its open orders already hold,
  including a protective stop whose cancel the broker has not confirmed: such a sell is not
  sent and the strategy is told, so it decides again at the next bar or clock tick;
- ``place_stop`` / ``replace_stop`` make the resting stop cover what is asked (placing,
  replacing or cancelling as the ledger's open stop requires, waiting for the broker's word),
  ``cancel_stop`` removes it; after each, the strategy is told what really rests.

The ``client_order_id`` comes from (strategy, symbol, signal time, leg) and the order is
written to the ledger as ``pending_submit`` BEFORE the HTTP call (``order_path``).

Modules: ``order_router`` (``OrderRouter``, the face the daemon uses), ``lanes`` (the lane
scheduler, knowing nothing of orders), ``dispatch`` (an item to its decision; failures),
``context`` (the work item and the context the decisions share), ``reports`` (each intent's
one report), ``entries``, ``exits``, ``stops``, ``flatten``. Every module logs under this
package's name, the router's logger, which operators and ``notify/bridge.py`` match on.
"""

from magellan_daemon.execution.router.context import StrategyRouting
from magellan_daemon.execution.router.order_router import OrderRouter, RouterStats
from magellan_daemon.execution.router.stops import ENTRY_SETTLE_SECONDS

__all__ = ["ENTRY_SETTLE_SECONDS", "OrderRouter", "RouterStats", "StrategyRouting"]

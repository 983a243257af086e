"""The exchange's accounts, one per API key, opened on first use; and the ids it draws.

Every id (order, execution, activity) comes from one seeded generator, so a run's ids
depend only on the seed and the order of the requests."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from decimal import Decimal

from magellan_core.clock import Clock
from magellan_sim.exchange.account import Account

ACCOUNT_NAMESPACE = uuid.UUID("0b7e3c52-2f5d-4a8e-bb0c-7a4f1d6e9c30")


class Ids:
    """Random-looking, reproducible UUIDs (version 4) from one seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def new(self) -> str:
        """The next id."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


class AccountBook:
    """Accounts by API key: a key seen for the first time opens one with the initial cash."""

    def __init__(self, clock: Clock, cash: Decimal) -> None:
        self._clock = clock
        self._initial_cash = Decimal(cash)
        self._accounts: dict[str, Account] = {}

    def open(self, key: str) -> Account:
        """The account of ``key``, opened now if it has none yet."""
        account = self._accounts.get(key)
        if account is None:
            digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
            account = Account(
                key=key,
                id=str(uuid.uuid5(ACCOUNT_NAMESPACE, key)),
                account_number=f"PA{digest % 10**10:010d}",
                created_at=self._clock.now(),
                cash=self._initial_cash,
                last_equity=self._initial_cash,
            )
            self._accounts[key] = account
        return account

    def __getitem__(self, key: str) -> Account:
        """An account that exists (the key of an order's account)."""
        return self._accounts[key]

    def __iter__(self) -> Iterator[Account]:
        """Every account, in the order they were opened."""
        return iter(list(self._accounts.values()))

    def by_key(self) -> list[Account]:
        """Every account, sorted by key (a reproducible order for work that draws ids)."""
        return [self._accounts[key] for key in sorted(self._accounts)]

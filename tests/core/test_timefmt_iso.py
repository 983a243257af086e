"""``timefmt.iso`` writes what ``strftime`` wrote, for any instant, zone and repeat."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from magellan_daemon.timefmt import NEW_YORK, iso, parse_iso

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def test_iso_is_strftimes_text_for_random_instants_in_several_zones() -> None:
    rng = random.Random(19)
    zones = [UTC, NEW_YORK, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    base = datetime(1999, 1, 1, tzinfo=UTC)
    for _ in range(2000):
        t = base + timedelta(
            seconds=rng.randrange(0, 40 * 365 * 86400), microseconds=rng.randrange(10**6)
        )
        local = t.astimezone(rng.choice(zones))
        assert iso(local) == t.strftime(FORMAT)
        assert iso(local) == iso(t)  # the memo answers the same instant in another zone
        assert parse_iso(iso(local)) == t


def test_iso_of_a_year_below_1000_keeps_strftimes_text() -> None:
    t = datetime(999, 5, 6, 7, 8, 9, 10, tzinfo=UTC)
    assert iso(t) == t.strftime(FORMAT)


def test_iso_of_consecutive_different_instants_is_not_the_memo() -> None:
    a = datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    b = a + timedelta(microseconds=1)
    assert (iso(a), iso(b), iso(a)) == (a.strftime(FORMAT), b.strftime(FORMAT), a.strftime(FORMAT))

"""Bar directories for end-to-end tests: the real bars, with one session edited.

No symbol crashed on 2024-11-29 (the 13:00 early close), so the early-close test gives GME a
crash after 12:30 ET: a -20% bar, then a trap-and-reclaim bar at 12:32, then quiet bars. The
entry's 30-minute time stop (13:03) would come after the close, so only the end-of-day exit
(12:55) can flatten it. Everything else is the real data, linked, not copied.
"""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

CUT = datetime(2024, 11, 29, 17, 30, tzinfo=UTC)  # 12:30 ET
OPEN = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)


def early_close_crash_bars(real: Path, tmp: Path) -> Path:
    """A bars dir like ``real`` whose GME 1Min file crashes after 12:30 ET on 2024-11-29."""
    out = tmp / "bars"
    for timeframe in ("1Day", "1Hour", "1Min"):
        (out / timeframe).mkdir(parents=True, exist_ok=True)
        for source in (real / timeframe).glob("*.csv.gz"):
            if not (timeframe == "1Min" and source.name == "GME.csv.gz"):
                (out / timeframe / source.name).symlink_to(source)
    with gzip.open(real / "1Min" / "GME.csv.gz", "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    day_end = CUT.replace(hour=23, minute=59)
    kept = [r for r in body if _t(r[0]) <= CUT or _t(r[0]) > day_end]
    session = [r for r in kept if OPEN <= _t(r[0]) <= CUT]
    session_open = float(session[0][1])
    last_close = float(session[-1][4])
    big = 100 * max(int(r[5]) for r in session)

    def row(minute: int, o: float, h: float, low: float, c: float, v: int) -> list[str]:
        t = CUT + timedelta(minutes=minute)
        return [
            t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            *(f"{x:.4f}" for x in (o, h, low, c)),
            str(v),
            "100",
            f"{c:.4f}",
        ]

    so = session_open
    synthetic = [
        row(1, last_close, last_close, 0.80 * so, 0.81 * so, big),  # the crash
        row(2, 0.795 * so, 0.83 * so, 0.78 * so, 0.825 * so, big),  # trap + reclaim
        *(row(m, 0.825 * so, 0.826 * so, 0.824 * so, 0.825 * so, big // 100) for m in range(3, 41)),
    ]
    merged = sorted(kept + synthetic, key=lambda r: r[0])
    with gzip.open(out / "1Min" / "GME.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(merged)
    return out


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))

"""What a finished sweep leaves in ``--out`` beside ``trials.csv``: ``best.toml`` (the strategy's
own config file with the best trial's values) and ``sweep.json`` (what ran and what won)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w

from magellan_daemon.config.loading import read_toml
from magellan_daemon.research.record import write_atomically
from magellan_daemon.research.space import Scalar


def write_best_toml(
    path: Path, base_file: Path, values: dict[str, Scalar], header: list[str]
) -> None:
    """``base_file`` (the strategy's config the sweep started from) with ``values`` put in by
    dotted path: a file ``magellan check-config`` accepts where the strategy's config goes."""
    data = read_toml(base_file)
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    comments = "".join(f"# {line}\n" for line in header)
    write_atomically(path, comments + "\n" + tomli_w.dumps(data))


def write_sweep_json(path: Path, content: dict[str, Any]) -> None:
    """``sweep.json``, indented, dates as ISO text."""
    write_atomically(path, json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")

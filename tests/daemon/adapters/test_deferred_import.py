"""``deferred_import.deferred``: inside the block an import binds a stand-in, the first use
imports the real module, and nothing of the stand-in is left in ``sys.modules``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from magellan_daemon.adapters.alpaca.deferred_import import deferred


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``heavy_dep`` (counts its own executions) and ``uses_heavy_dep`` (imports it)."""
    (tmp_path / "heavy_dep.py").write_text(
        "import builtins\n"
        "builtins.heavy_dep_runs = getattr(builtins, 'heavy_dep_runs', 0) + 1\n"
        "VALUE = 42\n"
    )
    (tmp_path / "uses_heavy_dep.py").write_text("import heavy_dep as hd\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("heavy_dep", "uses_heavy_dep"):
        sys.modules.pop(name, None)
    import builtins

    builtins.__dict__.pop("heavy_dep_runs", None)


def _runs() -> int:
    import builtins

    return int(getattr(builtins, "heavy_dep_runs", 0))


def test_the_module_runs_on_its_first_use_not_at_the_import(modules: None) -> None:
    with deferred("heavy_dep"):
        uses = importlib.import_module("uses_heavy_dep")
    assert _runs() == 0
    assert "heavy_dep" not in sys.modules  # no stand-in left behind
    assert uses.hd.VALUE == 42
    assert _runs() == 1
    real = sys.modules["heavy_dep"]
    assert real is not uses.hd and real.VALUE == 42
    assert uses.hd.VALUE == 42 and _runs() == 1  # forwarded, never run twice


def test_a_use_inside_the_block_is_an_error_not_a_silent_import(modules: None) -> None:
    with deferred("heavy_dep"):
        uses = importlib.import_module("uses_heavy_dep")
        with pytest.raises(ImportError, match=r"heavy_dep\.VALUE read while"):
            _ = uses.hd.VALUE
    assert _runs() == 0


def test_nothing_is_deferred_when_the_module_is_imported_already(modules: None) -> None:
    real = importlib.import_module("heavy_dep")
    with deferred("heavy_dep"):
        uses = importlib.import_module("uses_heavy_dep")
    assert uses.hd is real and _runs() == 1

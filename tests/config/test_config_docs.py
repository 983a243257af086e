"""The README's configuration reference is the one generated from the models."""

from __future__ import annotations

from magellan_daemon.config.reference import BEGIN, END, SECTIONS, reference
from tests.conftest import REPO


def test_readme_reference_matches_the_models() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(BEGIN) : readme.index(END) + len(END)]
    assert block == reference(), "run: python -m magellan_daemon.config.reference --write"


def test_every_field_is_documented() -> None:
    for title, model in SECTIONS:
        for name, field in model.model_fields.items():
            assert field.description, f"{title}: field {name!r} has no description"

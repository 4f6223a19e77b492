"""The committed scenario reference is the one the schema generates."""

from pathlib import Path

from gauge_vfe.agents.setup.schema_doc import reference_markdown


def test_reference_page_is_up_to_date():
    page = Path(__file__).resolve().parent.parent / "docs" / "scenario-reference.md"
    assert page.read_text() == reference_markdown(), "regenerate: python -m gauge_vfe.agents.setup.schema_doc > docs/scenario-reference.md"

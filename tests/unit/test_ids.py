"""Deterministic ids: the fast text form is exactly the standard library's uuid5."""

from __future__ import annotations

from uuid import UUID, uuid5

from hypothesis import given
from hypothesis import strategies as st

from domain.ids import NAMESPACE, name_id_text


@given(st.text())
def test_name_id_text_is_the_text_of_uuid5(name: str) -> None:
    text = name_id_text(name)
    assert text == str(uuid5(NAMESPACE, name))
    assert UUID(text).version == 5

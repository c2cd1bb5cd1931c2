"""`luxflow query --format csv`: a cell a device or operator chose cannot become a formula
when the file is opened in a spreadsheet."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.query import FORMULA_STARTS, render


def parsed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "=1"],
)
def test_a_text_cell_starting_like_a_formula_is_prefixed_with_an_apostrophe(value: str) -> None:
    (row,) = parsed(render([{"asset_id": value, "kwh": 1.5}], "csv"))
    assert row["asset_id"] == "'" + value
    assert row["kwh"] == "1.5"


def test_numbers_and_ordinary_text_are_unchanged() -> None:
    (row,) = parsed(render([{"asset_id": "lamp-1", "kwh": -0.25, "ts_ms": -1}], "csv"))
    assert row == {"asset_id": "lamp-1", "kwh": "-0.25", "ts_ms": "-1"}


@given(st.lists(st.text(max_size=20), min_size=1, max_size=5))
def test_no_text_cell_of_the_output_starts_like_a_formula(values: list[str]) -> None:
    rows = [{"id": value, "n": index} for index, value in enumerate(values)]
    for original, row in zip(values, parsed(render(rows, "csv")), strict=True):
        assert not row["id"].startswith(FORMULA_STARTS)
        assert row["id"] in (original, "'" + original)

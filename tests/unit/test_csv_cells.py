"""CSV exports never hand a spreadsheet a formula (OWASP CSV injection), and keep numbers as numbers."""

from __future__ import annotations

import csv
import io

from app.presenters import csv_cell, statement_csv


def test_text_that_starts_like_a_formula_is_neutralised_and_numbers_are_not() -> None:
    for text in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("Mug") == "Mug" and csv_cell(-2250) == -2250 and csv_cell(None) == ""


def test_a_statement_line_with_a_formula_description_is_exported_inert() -> None:
    from app.presenters import STATEMENT_COLUMNS

    line = {column: None for column in STATEMENT_COLUMNS}
    line.update(
        {column: "=cmd|' /C calc'!A0" for column in STATEMENT_COLUMNS if column in ("kind", "order_id")}
    )
    rows = list(csv.reader(io.StringIO(statement_csv({"currency": "USD", "lines": [line]}))))
    assert all(not cell.startswith("=") for cell in rows[1])

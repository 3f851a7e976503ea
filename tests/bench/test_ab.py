"""``python -m bench.ab``'s table: medians, the ratio to the bare relay, and this tree's
ratio to the base's matching row. No timing is asserted."""

from __future__ import annotations

from bench.ab import BARE, loads, table


def test_the_table_divides_by_the_bare_relay_and_by_the_base_row() -> None:
    chosen = {"1token": loads(1.0)["1token"], "delta": loads(1.0)["delta"]}
    base = "base abc123"
    found = {
        ("1token", BARE): [200.0, 100.0, 300.0],
        ("1token", f"{base}, none"): [400.0, 400.0, 400.0],
        ("1token", "this tree, none"): [300.0, 200.0, 310.0],
        ("delta", BARE): [5.0],
        ("delta", f"{base}, none"): [10.0],
        ("delta", "this tree, none"): [8.0],
    }
    rows = table(chosen, found, base).splitlines()
    assert (
        rows[2]
        == "| 1-token streams (per request) | bare relay | 200.0 | 200, 100, 300 | 1.00 |  |"
    )
    assert rows[3].endswith("| 400.0 | 400, 400, 400 | 2.00 |  |")
    assert rows[4] == (
        "| 1-token streams (per request) | this tree, none | 300.0 | 300, 200, 310 | 1.50 | 0.75 |"
    )
    assert rows[7] == "| full speed (per delta) | this tree, none | 8.0 | 8.0 | 1.60 | 0.80 |"

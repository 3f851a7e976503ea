"""bench's plan selection: ``python -m bench.run --only SETUP`` runs those rows only."""

from __future__ import annotations

import pytest

from bench import run
from bench.scenarios import full_plan, only


def test_only_keeps_the_named_setups_rows_in_order() -> None:
    plan = full_plan()
    narrowed = only(plan, ["local-sf-false", "none"])
    assert narrowed.cases == tuple(
        c for c in plan.cases if c.rails.key in ("local-sf-false", "none")
    )
    assert {c.rails.key for c in narrowed.cases} == {"local-sf-false", "none"}
    assert narrowed.retry_budget_s == plan.retry_budget_s


def test_only_names_the_known_setups_for_an_unknown_one() -> None:
    with pytest.raises(ValueError, match="unknown setup nope; known: none, local-sf-true"):
        only(full_plan(), ["local-sf-true", "nope"])


def test_the_command_refuses_an_unknown_setup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run.main(["--only", "nope"])
    assert exit_.value.code == 2
    assert "unknown setup nope" in capsys.readouterr().err

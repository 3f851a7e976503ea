"""The labelled corpus (bench/efficacy): every attack caught by its rail, every benign
text passed by every rail; and a sample streamed through the real proxy, split into one
delta per token with a window boundary inside the attack, in both release modes.

``python -m bench.efficacy`` streams the whole corpus at several window settings."""

from __future__ import annotations

import pytest

from bench.efficacy.corpus import RAIL_CONFIG, RAILS, Case, RailName, attacks, benign
from bench.efficacy.run import core_tokens, placements
from bench.text import deltas as filler
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body
from rails.base import Action, CheckContext
from rails.registry import build_rail
from rails.resources import Resources

OUT = CheckContext(stage="output")


async def _verdicts(cases: list[Case], rail: RailName) -> list[tuple[Case, Action]]:
    built = build_rail(rail, RAIL_CONFIG[rail], Resources())
    return [(c, (await built.check(c.text, OUT)).action) for c in cases if c.rail == rail]


@pytest.mark.parametrize("rail", RAILS)
async def test_every_attack_is_caught(rail: RailName) -> None:
    missed = [(c.evasion, c.text) for c, a in await _verdicts(attacks(), rail) if a is Action.ALLOW]
    assert not missed


@pytest.mark.parametrize("rail", RAILS)
async def test_no_benign_text_is_blocked(rail: RailName) -> None:
    blocked = [c.text for c, a in await _verdicts(benign(), rail) if a is not Action.ALLOW]
    assert not blocked


def test_the_corpus_has_at_least_as_many_benign_texts_as_attacks() -> None:
    for rail in RAILS:
        n_attacks = sum(c.rail == rail for c in attacks())
        assert sum(c.rail == rail for c in benign()) >= n_attacks > 0


def _sample() -> list[Case]:
    """One tuned attack per rail and evasion class, for the slower proxy runs; only
    attacks shorter than context_size (50) tokens as streamed (full-width forms of long
    keys are not: those are in the bench's report)."""
    seen: dict[tuple[str, str], Case] = {}
    for case in attacks():
        if not case.held_out and core_tokens(case) < 50:
            seen.setdefault((case.rail, case.evasion), case)
    return [seen[k] for k in sorted(seen)]


def _config(rail: RailName, stream_first: bool) -> dict[str, object]:
    streaming = {"enabled": True, "chunk_size": 200, "context_size": 50}
    return {
        "streaming": True,
        "rails": {
            "config": {rail: RAIL_CONFIG[rail]},
            "output": {"flows": [rail], "streaming": {**streaming, "stream_first": stream_first}},
        },
    }


@pytest.mark.parametrize("stream_first", [True, False])
async def test_sampled_attacks_are_caught_through_the_proxy(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    proxies = {rail: await proxy(**_config(rail, stream_first)) for rail in RAILS}
    missed = []
    cases = _sample()
    assert len(cases) > 90  # every class of every rail
    for case in cases:
        cuts = list(placements(case, 200))
        for pieces in (cuts[0], cuts[len(cuts) // 2], cuts[-1]):
            fake.script = Script(text=pieces)
            _, raw = await proxies[case.rail].post_stream("/v1/chat/completions", chat_body())
            if b"Blocked by " not in raw:
                missed.append((case.rail, case.evasion))
    assert not missed


@pytest.mark.parametrize("stream_first", [True, False])
async def test_benign_non_latin_text_streams_through_untouched(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    texts = [c.text for c in benign() if c.rail == "blocklist" and not c.text.isascii()]
    assert len(texts) >= 8
    p = await proxy(**_config("blocklist", stream_first))
    for text in texts:
        fake.script = Script(text=[*filler("words", 190), " ", text])
        _, raw = await p.post_stream("/v1/chat/completions", chat_body())
        assert raw == fake.sent[-1]


async def test_the_phone_set_is_caught_but_bare_digit_runs() -> None:
    """``bench.efficacy.phones``'s numbers: every national and international form and
    disguise, except a bare 10-digit run (an order number looks the same)."""
    from bench.efficacy import phones

    rail = build_rail("pii", {"type": "pii", "entities": ["phone"]}, Resources())
    missed = [
        (fmt, evasion)
        for fmt, evasion, text in phones.attacks()
        if (await rail.check(text, OUT)).action is Action.ALLOW
    ]
    assert {fmt for fmt, _ in missed} == {"us_bare_10_digits"}
    assert len(missed) == len(phones.EVASIONS)

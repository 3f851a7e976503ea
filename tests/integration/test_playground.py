"""The playground page and its debug channel, through the real proxy and a fake upstream.

The channel's contract: with ``server.playground: true`` and ``X-Railproxy-Debug: 1`` the
client gets the upstream's bytes plus ``event: railproxy`` events, nothing else changed;
without either, exactly the bytes it always got.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body
from integration.test_guarded import ABORT, WORDS, content, rails, with_secret_at
from proxy.playground.channel import abort_event
from proxy.playground.page import content_security_policy
from rails.base import Blocked

DEBUG = {"X-Railproxy-Debug": "1"}
PLAYGROUND = {"server": {"playground": True}}
_DEBUG_EVENT = re.compile(rb"event: railproxy\ndata: ([^\n]*)\n\n")


def split(raw: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """The debug events of a response, and its bytes without them."""
    found = [json.loads(m) for m in _DEBUG_EVENT.findall(raw)]
    return found, _DEBUG_EVENT.sub(b"", raw)


def kinds(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in found if e["kind"] == kind]


# -- GET /ui ----------------------------------------------------------------------------


async def test_ui_is_404_unless_the_playground_is_on(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    p = await proxy()
    async with p.session.get(p.url("/ui")) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "not_found"


async def test_ui_serves_one_self_contained_page(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    p = await proxy(**PLAYGROUND)
    async with p.session.get(p.url("/ui")) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/html; charset=utf-8"
        csp = r.headers["Content-Security-Policy"]
        page = await r.text()
    for external in ("http://", "https://", "//cdn", "src=", "@import", "url("):
        assert external not in page
    assert csp == content_security_policy(page)
    assert "default-src 'none'" in csp
    assert "connect-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert csp.count("'sha256-") == 2  # the page's one <script> and one <style>
    assert "X-Railproxy-Debug" in page
    assert "/v1/rails/configs" in page


# -- ordinary clients see nothing ------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "headers"),
    [
        (PLAYGROUND, {}),  # playground on, no header
        ({}, DEBUG),  # header, playground off
        (PLAYGROUND, {"X-Railproxy-Debug": "yes"}),  # only "1" asks
    ],
)
@pytest.mark.parametrize("stream_first", [True, False])
async def test_without_both_opt_ins_the_bytes_are_the_upstreams(
    fake: FakeUpstream,
    proxy: ProxyFactory,
    sections: dict[str, Any],
    headers: dict[str, str],
    stream_first: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rails.stream.CallLog", None)  # any report bookkeeping would fail
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**sections, **rails(stream_first))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=headers)
    assert status == 200
    assert raw == fake.sent[-1]


@pytest.mark.parametrize("headers", [{}, DEBUG])
async def test_a_block_without_debug_is_unchanged(
    fake: FakeUpstream, proxy: ProxyFactory, headers: dict[str, str]
) -> None:
    fake.script = Script(text=with_secret_at(25))
    p = await proxy(**rails(False))  # playground off: the header does nothing
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=headers)
    assert raw.endswith(ABORT)
    assert b"railproxy" not in raw


# -- the debug channel -------------------------------------------------------------------


@pytest.mark.parametrize("stream_first", [True, False])
async def test_debug_events_are_added_and_nothing_else_changes(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**PLAYGROUND, **rails(stream_first, chunk=10, context=4))
    status, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    found, rest = split(raw)
    assert status == 200
    assert rest == fake.sent[-1]
    assert found[0] == {
        "kind": "start",
        "config": "default",
        "guarded": True,
        "rails": ["banned"],
        "stream_first": stream_first,
        "chunk_size": 10,
        "context_size": 4,
        "token_unit": "token",
        "parallel": False,
    }
    assert raw.startswith(b"event: railproxy\n")


@pytest.mark.parametrize("stream_first", [True, False])
async def test_window_events_cut_the_text_the_client_gets(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=WORDS)  # " w0" .. " w59": two tokens each
    p = await proxy(**PLAYGROUND, **rails(stream_first, chunk=10, context=4))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    found, rest = split(raw)
    text = content(rest)
    windows = kinds(found, "window")
    assert [w["index"] for w in windows] == list(range(len(windows)))
    assert [(w["start"], w["end"]) for w in windows[:2]] == [(0, 10), (10, 20)]
    assert windows[-1]["end"] == 2 * len(WORDS)
    pieces = [text[w["char_start"] : w["char_start"] + w["chars"]] for w in windows]
    assert "".join(pieces) == text
    assert pieces[0] == "".join(WORDS[:5])
    for w in windows:
        assert w["channel"] == [0, "content", 0]
        assert w["verdict"] == "allow"
        assert [(r["rail"], r["verdict"]) for r in w["rails"]] == [("banned", "allow")]
        assert 0 <= w["rails"][0]["seconds"] <= w["seconds"] < 5


async def test_held_events_count_the_held_back_events(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**PLAYGROUND, **rails(False, chunk=10, context=4))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    held = kinds(split(raw)[0], "held")
    assert held
    assert max(h["events"] for h in held) >= 1
    assert held[-1] == {"kind": "held", "events": 0, "tokens": 0}
    assert raw.index(b'"kind":"held","events":0') < raw.index(b"data: [DONE]")


async def test_stream_first_true_has_no_held_events(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS)
    p = await proxy(**PLAYGROUND, **rails(True))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    assert kinds(split(raw)[0], "held") == []


@pytest.mark.parametrize("stream_first", [True, False])
async def test_the_abort_event_precedes_the_abort_bytes(
    fake: FakeUpstream, proxy: ProxyFactory, stream_first: bool
) -> None:
    fake.script = Script(text=with_secret_at(25, total=400), tokens_per_s=400)
    p = await proxy(**PLAYGROUND, **rails(stream_first, chunk=10, context=4))
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    found, rest = split(raw)
    blocked = kinds(found, "window")[-1]
    assert blocked["verdict"] == "block"
    assert [(r["rail"], r["verdict"]) for r in blocked["rails"]] == [("banned", "block")]
    reason = "matched blocklisted term 'project falcon'"
    expected = Blocked("banned", reason, blocked["start"], released=stream_first)
    assert raw.endswith(abort_event(expected) + ABORT)
    assert rest.endswith(ABORT)
    assert 40 <= blocked["start"] <= 52 <= blocked["end"]  # " Project" is token 50
    if not stream_first:
        assert b"Falcon" not in raw


async def test_masking_reports_modify_and_the_masked_length(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    words = [" write", " to", " jane", ".doe@", "example", ".com", " now", *WORDS[:20]]
    fake.script = Script(text=words)
    cfg = rails(stream_first=False)
    cfg["rails"]["config"]["pii"] = {"type": "pii", "entities": ["email"], "action": "mask"}
    cfg["rails"]["output"]["flows"] = ["banned", "pii"]
    p = await proxy(**PLAYGROUND, **cfg)
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    found, rest = split(raw)
    text = content(rest)
    windows = kinds(found, "window")
    assert windows[0]["verdict"] == "modify"
    rails_seen = [(r["rail"], r["verdict"]) for r in windows[0]["rails"]]
    assert rails_seen == [("banned", "allow"), ("pii", "modify")]
    assert sum(w["chars"] for w in windows) == len(text)
    assert text[: windows[0]["chars"]].startswith(" write to [EMAIL]")
    assert b"jane" not in raw


async def test_parallel_block_reports_the_rails_that_finished(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=with_secret_at(3, total=20))
    cfg = rails(stream_first=False, chunk=40)
    cfg["rails"]["config"]["judge"] = {
        "type": "python",
        "class": "integration.sample_rails:SlowRail",
        "options": {"delay_s": 2},
    }
    cfg["rails"]["output"]["flows"] = ["banned", "judge"]
    cfg["rails"]["output"]["parallel"] = True
    p = await proxy(**PLAYGROUND, **cfg)
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    (window,) = kinds(split(raw)[0], "window")
    assert window["verdict"] == "block"
    assert [(r["rail"], r["verdict"]) for r in window["rails"]] == [("banned", "block")]


async def test_pass_through_with_debug_only_announces_itself(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    fake.script = Script(text=WORDS, include_usage=True)
    p = await proxy(**PLAYGROUND)
    _, raw = await p.post_stream("/v1/chat/completions", chat_body(), headers=DEBUG)
    found, rest = split(raw)
    assert [e["kind"] for e in found] == ["start"]
    assert found[0]["guarded"] is False
    assert rest == fake.sent[-1]
    assert "x-railproxy-debug" not in fake.requests[-1].headers

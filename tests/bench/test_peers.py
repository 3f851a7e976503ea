"""``python -m bench.peers``: how a blocked stream's ending is told apart (no peer is
installed or run here: that takes minutes and stays out of CI)."""

from __future__ import annotations

import json

from bench import peers


def _sse(*events: object) -> bytes:
    out = b""
    for event in events:
        payload = event if isinstance(event, str) else json.dumps(event)
        out += b"data: " + payload.encode() + b"\n\n"
    return out


def _delta(text: str) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


def test_an_error_event_then_done() -> None:
    error = {"error": {"message": "Blocked", "code": "content_blocked"}}
    raw = _sse(_delta(" a"), _delta(" alice.smith@example.com"), error, "[DONE]")
    assert peers._ending(200, raw, cut=False) == "error event (code content_blocked), then [DONE]"
    assert peers._deltas(raw) == 2
    assert peers.FORBIDDEN.encode() in raw


def test_an_error_event_without_done_and_a_cut_stream() -> None:
    raw = _sse(_delta(" a"), {"error": {"code": "500"}})
    assert peers._ending(200, raw, cut=False) == (
        "content chunk, then error event (code 500), then no [DONE]"
    )
    cut = _sse(_delta(" a"), _delta(" b"))[:-3]
    assert peers._ending(200, cut, cut=True).endswith("then connection cut")


def test_a_finish_reason_and_a_refusal_status() -> None:
    stop = {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]}
    raw = _sse(_delta(" a"), stop, "[DONE]")
    assert peers._ending(200, raw, cut=False) == "finish_reason content_filter, then [DONE]"
    assert peers._ending(400, b'{"error": "no"}', cut=False).startswith("HTTP 400")


def test_the_peer_configs_hold_the_same_window_and_pattern() -> None:
    nemo = (peers.CONFIGS / "nemo" / "config.yml").read_text()
    assert "chunk_size: 200" in nemo
    assert "context_size: 50" in nemo
    assert "regex check output" in nemo
    guard = (peers.CONFIGS / "litellm" / "keyword_guardrail.py").read_text()
    assert "CHUNK_SIZE = 200" in guard
    assert "CONTEXT_SIZE = 50" in guard
    assert f'r"{peers.PATTERN}"' in guard

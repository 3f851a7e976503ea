"""Property: for any request target, with rails configured, a request reaches a guarded
handler, an allow-listed pass-through, or gets a 4xx; the upstream never sees a generating
path unguarded, and no unguarded answer carries the generated word.

Hypothesis drives sync tests, so the hostile upstream (``fakes.everywhere``, which generates
on every path) and the proxy run on an event loop in a background thread, and requests go out
as raw bytes on blocking sockets.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.everywhere import WORD, Everywhere
from integration.test_routes import RAILS
from integration.threaded import Threaded
from proxy.flow.paths import parse
from proxy.routes import BUILTIN, GUARDED, allowed

WORDS = [
    "v1", "chat", "completions", "models", "embeddings", "generate", "generate_stream",
    "responses", "messages", "batch", "rails", "configs", "tokenize", ".", "..", "",
]  # fmt: skip
INTERESTING = [0x2F, 0x3F, 0x23, 0x09, 0x0D, 0x0A, 0x20, 0x00, 0x2E, 0x5C, 0x25, 0x63, 0x7F]
ESCAPE = (st.sampled_from(INTERESTING) | st.integers(0, 255)).flatmap(
    lambda b: st.sampled_from([f"%{b:02X}", f"%{b:02x}"])
)
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
SEGMENT = st.lists(st.sampled_from(WORDS) | PRINTABLE | ESCAPE, max_size=3).map("".join)
PATH = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
TARGET = st.tuples(st.sampled_from(["", "", "", "http://x"]), PATH).map("".join)
METHOD = st.sampled_from(["GET", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
MESSAGES = [{"role": "user", "content": "hi"}]
BODY = json.dumps(
    {"model": "m", "messages": MESSAGES, "stream": True, "prompt": "hi", "inputs": "hi"}
).encode()


@pytest.fixture(scope="module")
def served() -> Iterator[Threaded]:
    s = Threaded(Everywhere(), RAILS)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def send(port: int, method: str, target: str) -> tuple[int, str, bytes]:
    """One raw request; (status, content type, body)."""
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + BODY)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head_bytes, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = [line.partition(": ") for line in lines[1:]]
    ctype = next((v for n, _, v in fields if n.lower() == "content-type"), "")
    return int(lines[0].split()[1]), ctype, body


def guarded_or_allowed(method: str, raw_target: str) -> bool:
    path = parse(raw_target).path
    return (method == "POST" and path in GUARDED) or allowed(BUILTIN, method, path) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(method=METHOD, target=TARGET)
def test_no_path_reaches_the_upstream_unguarded(served: Threaded, method: str, target: str) -> None:
    before = len(served.upstream.seen)
    status, ctype, body = send(served.port, method, target)
    seen = served.upstream.seen[before:]
    assert status < 500, (method, target, status, body)
    for up_method, up_target in seen:
        assert guarded_or_allowed(up_method, up_target), (method, target, seen)
    if status < 300 and not any(allowed(BUILTIN, m, parse(t).path) for m, t in seen):
        assert WORD.encode() not in body, (method, target, body)
    if status >= 400 and ctype == "application/json" and method != "HEAD":
        error = json.loads(body)
        if isinstance(error["error"], str):  # TGI's own routes answer in TGI's shape
            assert set(error) == {"error", "error_type"}
        else:
            assert {"message", "type", "param", "code"} == set(error["error"])

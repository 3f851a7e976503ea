"""Arbitrary request bodies never produce a 500 (hypothesis, through the real proxy).

Hypothesis drives sync tests, so the fake upstream and the proxy run on an event loop in
a background thread, and requests go out with the standard library's blocking client.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.upstream import FakeUpstream
from integration.threaded import Threaded

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGES = st.lists(st.fixed_dictionaries({}, optional={"role": JSON, "content": JSON}), max_size=3)
CHATISH = st.fixed_dictionaries(
    {},
    optional={
        "messages": MESSAGES | JSON,
        "stream": JSON,
        "model": JSON,
        "config_id": JSON,
        "guardrails": JSON,
        "prompt": JSON,
        "inputs": JSON,
        "stream_options": JSON,
    },
)
BODIES = (
    st.binary(max_size=200)
    | JSON.map(lambda v: json.dumps(v).encode())
    | CHATISH.map(lambda v: json.dumps(v).encode())
)
PATHS = st.sampled_from(
    ["/v1/chat/completions", "/v1/completions", "/generate", "/generate_stream"]
)
RAILS = {"input": {"flows": ["secrets"]}, "output": {"flows": ["pii"]}}


@pytest.fixture(scope="module")
def served() -> Iterator[Threaded]:
    s = Threaded(FakeUpstream(), {"rails": RAILS})
    s.start()
    try:
        yield s
    finally:
        s.stop()


def post(url: str, body: bytes) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), r.headers.get_content_type()
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get_content_type()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, path=PATHS)
def test_no_body_makes_a_500(served: Threaded, body: bytes, path: str) -> None:
    status, payload, content_type = post(served.base + path, body)
    assert status < 500, (path, body, payload)
    if status >= 400 and content_type == "application/json":
        error = json.loads(payload)["error"]
        assert {"message", "type"} <= set(error)

"""The Grafana dashboard against live metrics: real traffic through the proxy, then every
series a panel queries must be in the scrape."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from fakes.faults import Fault, FaultKind
from fakes.upstream import FakeUpstream, Script
from integration.conftest import ProxyFactory, chat_body

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "railproxy.json"
RAILS = {
    "streaming": True,
    "rails": {
        "config": {"banned": {"type": "blocklist", "words": ["falcon"]}},
        "input": {"flows": ["secrets"]},
        "output": {
            "flows": ["banned"],
            "streaming": {"enabled": True, "chunk_size": 4, "stream_first": False},
        },
    },
}


def queried_series() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels if p["type"] != "row" for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\brailproxy_\w+", e)}


async def traffic(fake: FakeUpstream, proxy: ProxyFactory) -> str:
    p = await proxy(**RAILS)
    url = p.url("/v1/chat/completions")
    # Paced, so windows pass one by one and are written separately (inter-token gaps).
    fake.script = Script(text=[f" w{i}" for i in range(12)], tokens_per_s=200)
    await p.post_stream("/v1/chat/completions", chat_body(stream_options={"include_usage": True}))
    fake.script = Script(text=[" the", " falcon", " flies"])
    await p.post_stream("/v1/chat/completions", chat_body())  # blocked
    fake.script = Script(fault=Fault(FaultKind.IN_BAND_ERROR, after=1))
    await p.post_stream("/v1/chat/completions", chat_body())
    fake.script = Script(text=["x "] * 100, tokens_per_s=50)
    resp = await p.session.post(url, json=chat_body())
    await resp.content.readline()
    resp.close()  # a client that leaves
    async with asyncio.timeout(2):
        await fake.wait_disconnect()
    await asyncio.sleep(0.05)
    async with p.session.get(p.url("/metrics")) as r:
        return await r.text()


async def test_every_dashboard_series_is_in_a_live_scrape(
    fake: FakeUpstream, proxy: ProxyFactory
) -> None:
    scrape = await traffic(fake, proxy)
    present = set(re.findall(r"^(railproxy_\w+)[{ ]", scrape, re.M))
    missing = sorted(queried_series() - present)
    assert missing == []
    assert len(queried_series()) >= 14

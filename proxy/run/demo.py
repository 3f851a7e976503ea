"""``railproxy demo``: a scripted upstream in vLLM's dialect and the proxy in front of it.

The demo upstream streams a canned answer word by word (about 40 words a second) for
``/v1/chat/completions`` and ``/v1/completions``. Ask it about "project falcon" and its
answer names the project, which the demo's blocklist rail stops mid-stream; ask for a
contact and the answer's e-mail address is masked by the pii rail.

The banner describes the config actually loaded (``--config FILE`` replaces the demo's
own), and each request prints one short line: route, status, outcome and the rail that
blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from proxy.app import create_app
from proxy.configs import ConfigSet
from proxy.loader import LoadedConfig
from proxy.run.server import bound_port, serve_forever
from proxy.settings import Settings
from rails.guard import Guard

MODEL = "railproxy-demo"
DEMO_RAILS: dict[str, Any] = {
    "streaming": True,  # both switches, as in NeMo Guardrails: this one and `enabled`
    "rails": {
        "config": {
            "banned": {"type": "blocklist", "words": ["project falcon"]},
            "pii": {"type": "pii", "entities": ["email", "phone"], "action": "mask"},
        },
        "output": {
            "flows": ["banned", "pii"],
            "streaming": {
                "enabled": True,
                "chunk_size": 8,
                "context_size": 4,
                "stream_first": False,
            },
        },
    },
}
ANSWERS = [
    (re.compile(r"falcon", re.I), "Project Falcon is our secret plan to launch next spring."),
    (re.compile(r"contact|email|e-mail", re.I), "Write to jane.doe@example.com and we reply."),
]
CLIENT_GONE = web.RequestKey("railproxy.demo.client_gone", bool)
DEFAULT_ANSWER = (
    "Hello! I am the railproxy demo model. Every word you read went through the "
    "proxy's rolling buffer and its output rails before reaching you."
)


def answer_for(prompt: str) -> list[str]:
    """The scripted answer, split into word pieces as a tokenizer would stream them."""
    text = next((a for pattern, a in ANSWERS if pattern.search(prompt)), DEFAULT_ANSWER)
    return re.findall(r"\s*\S+", text)


def demo_upstream(delay_s: float = 0.025) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _make_handler(delay_s, chat=True))
    app.router.add_post("/v1/completions", _make_handler(delay_s, chat=False))
    app.router.add_get("/v1/models", _models)
    return app


async def _models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


def _make_handler(delay_s: float, chat: bool) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = _prompt(body, chat)
        pieces = answer_for(prompt)
        if not body.get("stream"):
            return web.json_response(_complete(pieces, chat))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        try:
            for chunk in _chunks(pieces, chat):
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
                await asyncio.sleep(delay_s)
            await resp.write(b"data: [DONE]\n\n")
        except ConnectionResetError:
            # The proxy closed the request (a block, or a client that left): stop quietly.
            request[CLIENT_GONE] = True
        return resp

    return handler


def _prompt(body: dict[str, Any], chat: bool) -> str:
    if not chat:
        return str(body.get("prompt", ""))
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


def _chunks(pieces: list[str], chat: bool) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL}
    if not chat:
        base = {**base, "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion"}
        texts = [{"index": 0, "text": p, "logprobs": None, "finish_reason": None} for p in pieces]
        texts.append({"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"})
        return [{**base, "choices": [c]} for c in texts]
    base["object"] = "chat.completion.chunk"
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
    out = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    end = {"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "stop"}
    out.append({**base, "choices": [end]})
    return out


def _complete(pieces: list[str], chat: bool) -> dict[str, Any]:
    text = "".join(pieces)
    usage = {"prompt_tokens": 8, "completion_tokens": len(pieces), "total_tokens": 8 + len(pieces)}
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL}
    if not chat:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
        return {**base, "object": "text_completion", "choices": [choice], "usage": usage}
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    return {**base, "object": "chat.completion", "choices": [choice], "usage": usage}


async def run_demo(port: int, loaded: LoadedConfig | None = None) -> None:
    """Start the demo upstream on a free port and the proxy on ``port`` with ``loaded``'s
    rails (None: the demo's own); serve until interrupted."""
    upstream = web.AppRunner(demo_upstream())
    await upstream.setup()
    await web.TCPSite(upstream, "127.0.0.1", 0).start()
    up_url = f"http://127.0.0.1:{bound_port(upstream)}/v1"
    try:
        if loaded is None:
            demo = {**DEMO_RAILS, "upstream": {"base_url": up_url}, "server": {"playground": True}}
            settings = Settings.model_validate(demo)
            configs, source = ConfigSet.single(settings.rails_config), None
        else:
            settings = loaded.settings.with_overrides(**{"upstream.base_url": up_url})
            configs, source = loaded.configs, loaded.source
        app = create_app(settings, configs)

        def ready(bound: int) -> None:
            print(banner(bound, settings, configs, source), flush=True)

        with request_lines():
            await serve_forever(app, "127.0.0.1", port, ready)
    finally:
        await upstream.cleanup()


def banner(port: int, settings: Settings, configs: ConfigSet, source: str | None) -> str:
    """What the demo prints at start: where it is, what the loaded config does, and how to
    try it (curl, ``railproxy chat``, the openai SDK)."""
    base = f"http://127.0.0.1:{port}/v1"
    lines = [f"railproxy demo: proxy at {base} (demo upstream behind it)"]
    lines += [f"  {line}" for line in describe_configs(configs, source)]
    if settings.server.playground:
        lines.append(f"  playground: http://127.0.0.1:{port}/ui")
    else:
        lines.append("  playground: off (server.playground: true turns it on)")
    return "\n".join([*lines, "", *_how_to_try(base), "", _what_to_ask(source)])


def describe_configs(configs: ConfigSet, source: str | None) -> list[str]:
    """One line per rails config: its rails and how a stream is released."""
    name = source or "the demo's built-in config"
    lines = [f"config: {name}"]
    for cid in configs.ids:
        label = f"  {cid}: " if len(configs.ids) > 1 else "  "
        lines.append(label + _rails_line(configs.get(cid)))
    return lines


def _rails_line(guard: Guard) -> str:
    inputs = [r.name for r in guard.input.rails]
    outputs = [r.name for r in guard.output.rails]
    if not inputs and not outputs:
        return "no rails: every answer passes through unchanged"
    parts = []
    if inputs:
        parts.append(f"input rails {', '.join(inputs)}")
    if outputs:
        s = guard.config.rails.output.streaming
        release = "stream_first: true" if s.stream_first else "stream_first: false"
        window = f"windows of {s.chunk_size} tokens"
        parts.append(f"output rails {', '.join(outputs)} ({window}, {release})")
        off = guard.config.streaming_switches_off
        if off:
            settings = " and ".join(f"{name}: true" for name in off)
            parts.append(f"streaming requests get a 400 until {settings}")
    parts.append(f"abort style {guard.config.rails.abort.style}")
    return "; ".join(parts)


def _how_to_try(base: str) -> list[str]:
    curl = f"""  curl -N {base}/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{MODEL}", "stream": true,
         "messages": [{{"role": "user", "content": "Tell me about Project Falcon"}}]}}'"""
    snippet = f"""  python -c "
from openai import OpenAI
c = OpenAI(base_url='{base}', api_key='none')
for ch in c.chat.completions.create(model='{MODEL}', stream=True,
        messages=[{{'role': 'user', 'content': 'How do I contact you?'}}]):
    print(ch.choices[0].delta.content or '', end='', flush=True) if ch.choices else None
print()\""""
    sdk = "with the openai SDK:"
    if importlib.util.find_spec("openai") is None:
        sdk = "with the openai SDK (not installed here: pip install openai):"
    return [
        "try it, in another terminal:",
        f"  railproxy chat --base-url {base}",
        "with curl:",
        curl,
        sdk,
        snippet,
    ]


def _what_to_ask(source: str | None) -> str:
    if source is None:
        return (
            'Ask about "Project Falcon" to see a block, or for a contact to see masking. '
            "Each request prints a line below. Ctrl-C stops."
        )
    return (
        'The demo model answers "Project Falcon is our secret plan ..." to questions about '
        'Project Falcon, "Write to jane.doe@example.com ..." to a contact question, and a '
        "greeting otherwise; your config's rails judge those answers. Each request prints a "
        "line below. Ctrl-C stops."
    )


class RequestLine(logging.Formatter):
    """An access-log record as one short line: route, status, outcome, blocking rail."""

    def format(self, record: logging.LogRecord) -> str:
        fields = vars(record)
        status = fields.get("status", 0)
        outcome = fields.get("outcome") or ("ok" if status < 400 else "error")
        rail = fields.get("blocked_rail")
        by = f" by rail '{rail}'" if rail else ""
        kind = "stream" if fields.get("stream") else "request"
        return f"  {fields.get('route', '?')} {status} {kind} {outcome}{by}"


@contextlib.contextmanager
def request_lines() -> Iterator[None]:
    """Print each request's line on stdout while the block runs."""
    access = logging.getLogger("railproxy.access")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(RequestLine())
    saved = access.level, access.propagate
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        yield
    finally:
        access.removeHandler(handler)
        access.level, access.propagate = saved

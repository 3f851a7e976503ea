"""``railproxy demo``: a scripted upstream in vLLM's dialect and the proxy in front of it.

The demo upstream streams a canned answer word by word (about 40 words a second) for
``/v1/chat/completions`` and ``/v1/completions``. Ask it about "project falcon" and its
answer names the project, which the demo's blocklist rail stops mid-stream; ask for a
contact and the answer's e-mail address is masked by the pii rail.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

from proxy.app import create_app
from proxy.configs import ConfigSet
from proxy.loader import load_config
from proxy.server import bound_port, serve_forever
from proxy.settings import Settings

MODEL = "railproxy-demo"
DEMO_RAILS: dict[str, Any] = {
    "streaming": True,
    "rails": {
        "config": {
            "banned": {"type": "blocklist", "words": ["project falcon"]},
            "pii": {"type": "pii", "entities": ["email", "phone"], "action": "mask"},
        },
        "output": {
            "flows": ["banned", "pii"],
            "streaming": {"chunk_size": 8, "context_size": 4, "stream_first": False},
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


async def run_demo(port: int, config: str | None = None) -> None:
    """Start the demo upstream on a free port and the proxy on ``port``; serve until
    interrupted."""
    upstream = web.AppRunner(demo_upstream())
    await upstream.setup()
    await web.TCPSite(upstream, "127.0.0.1", 0).start()
    up_url = f"http://127.0.0.1:{bound_port(upstream)}/v1"
    try:
        if config is None:
            demo = {**DEMO_RAILS, "upstream": {"base_url": up_url}, "server": {"playground": True}}
            settings = Settings.model_validate(demo)
            configs = ConfigSet.single(settings.rails_config)
        else:
            loaded = load_config(config, **{"upstream.base_url": up_url})
            settings, configs = loaded.settings, loaded.configs
        app = create_app(settings, configs)
        await serve_forever(app, "127.0.0.1", port, _print_usage)
    finally:
        await upstream.cleanup()


def _print_usage(port: int) -> None:
    base = f"http://127.0.0.1:{port}/v1"
    print(
        f"""railproxy demo: proxy at {base} (demo upstream behind it)
  playground: http://127.0.0.1:{port}/ui (the built-in demo config turns it on)

  curl -N {base}/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "{MODEL}", "stream": true,
         "messages": [{{"role": "user", "content": "Tell me about Project Falcon"}}]}}'

  python -c "
from openai import OpenAI
c = OpenAI(base_url='{base}', api_key='none')
for ch in c.chat.completions.create(model='{MODEL}', stream=True,
        messages=[{{'role': 'user', 'content': 'How do I contact you?'}}]):
    print(ch.choices[0].delta.content or '', end='', flush=True) if ch.choices else None
print()"

Ask about "Project Falcon" to see a block, or for a contact to see masking. Ctrl-C stops.""",
        flush=True,
    )

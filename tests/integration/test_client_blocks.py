"""How each client surfaces a block, in each abort style: the README's Clients table, checked
with the real clients (Python: openai, huggingface_hub, LangChain's ChatOpenAI, httpx-sse;
curl; Node: openai and @huggingface/inference, pinned in tests/clients/node/package.json).

The config holds events until judged (``stream_first: false``), so every client's text stops
before the banned phrase: " Our plan is Project" and never " Falcon"."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import openai
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import BadRequestError as HfBadRequest
from huggingface_hub.errors import UnknownError
from langchain_openai import ChatOpenAI

from fakes.upstream import FakeUpstream, Script
from integration.conftest import Proxy, ProxyFactory

pytestmark = pytest.mark.usefixtures("no_leaks")

WORDS = [" Our", " plan", " is", " Project", " Falcon", " and", " more", "."]
BEFORE = " Our plan is Project"  # the window that passed
REFUSAL = "[removed by policy]"
MESSAGES = [{"role": "user", "content": "hi"}]
NODE_DIR = Path(__file__).parents[1] / "clients" / "node"
STYLES = ["error", "content_filter"]


def rails(style: str) -> dict[str, Any]:
    return {
        "streaming": True,
        "rails": {
            "config": {"banned": {"type": "blocklist", "words": ["project falcon"]}},
            "output": {
                "flows": ["banned"],
                "streaming": {
                    "enabled": True,
                    "chunk_size": 4,
                    "context_size": 2,
                    "stream_first": False,
                },
            },
            "abort": {"style": style, "refusal_message": REFUSAL},
        },
    }


async def start(fake: FakeUpstream, proxy: ProxyFactory, style: str) -> Proxy:
    fake.script = Script(text=WORDS)
    return await proxy(**rails(style))


# -- Python clients ---------------------------------------------------------------------


async def test_openai_python(fake: FakeUpstream, proxy: ProxyFactory) -> None:
    for style in STYLES:
        p = await start(fake, proxy, style)
        client = openai.AsyncOpenAI(base_url=p.v1, api_key="sk-test", max_retries=0)
        async with client:
            text, finish, error = "", None, None
            try:
                stream = await client.chat.completions.create(
                    model="m",
                    messages=MESSAGES,  # type: ignore[arg-type]
                    stream=True,
                )
                async for chunk in stream:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                        finish = chunk.choices[0].finish_reason or finish
            except openai.APIError as e:
                error = e
            try:
                whole = await client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
                whole_error = None
            except openai.APIError as e:
                whole_error = e
        if style == "error":
            assert text == BEFORE
            assert type(error) is openai.APIError  # raised mid-iteration, no HTTP status
            assert error.code == "content_blocked"
            assert isinstance(whole_error, openai.BadRequestError)
            assert whole_error.status_code == 400
            assert whole_error.code == "content_blocked"
        else:
            assert error is None
            assert text == BEFORE + "\n" + REFUSAL
            assert finish == "content_filter"
            assert whole_error is None
            assert whole.choices[0].message.content == REFUSAL
            assert whole.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("style", STYLES)
async def test_huggingface_hub(fake: FakeUpstream, proxy: ProxyFactory, style: str) -> None:
    p = await start(fake, proxy, style)

    def use() -> dict[str, Any]:
        with InferenceClient(base_url=p.base) as client:
            return use_client(client)

    def use_client(client: InferenceClient) -> dict[str, Any]:
        seen: dict[str, Any] = {"text": "", "finish": None}
        try:
            for chunk in client.chat_completion(MESSAGES, model="m", stream=True):
                if chunk.choices:
                    seen["text"] += chunk.choices[0].delta.content or ""
                    seen["finish"] = chunk.choices[0].finish_reason or seen["finish"]
        except Exception as e:
            seen["stream_error"] = e
        try:
            seen["whole"] = client.chat_completion(MESSAGES, model="m")
        except Exception as e:
            seen["whole_error"] = e
        seen["tgi_text"] = ""
        try:  # TGI's native /generate_stream: TGI's own error event in both styles
            for token in client.text_generation("hi", stream=True, max_new_tokens=20):
                seen["tgi_text"] += token
        except Exception as e:
            seen["tgi_error"] = e
        return seen

    fake.script = Script(text=WORDS)
    seen = await asyncio.to_thread(use)
    tgi_error = seen["tgi_error"]
    assert isinstance(tgi_error, UnknownError)
    assert str(tgi_error) == "Blocked by banned rails."
    assert seen["tgi_text"] == BEFORE
    if style == "error":
        assert seen["text"] == BEFORE
        stream_error = seen["stream_error"]
        assert isinstance(stream_error, UnknownError)  # the error object, as its str()
        assert "'code': 'content_blocked'" in str(stream_error)
        whole_error = seen["whole_error"]
        assert isinstance(whole_error, HfBadRequest)
        assert whole_error.response.status_code == 400
        assert whole_error.response.json()["error"]["code"] == "content_blocked"
    else:
        assert "stream_error" not in seen
        assert seen["text"] == BEFORE + "\n" + REFUSAL
        assert seen["finish"] == "content_filter"
        assert seen["whole"].choices[0].message.content == REFUSAL
        assert seen["whole"].choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("style", STYLES)
async def test_langchain_chat_openai(fake: FakeUpstream, proxy: ProxyFactory, style: str) -> None:
    p = await start(fake, proxy, style)
    async with httpx.AsyncClient() as http:
        llm = ChatOpenAI(
            base_url=p.v1,
            api_key="sk-test",  # type: ignore[arg-type]
            model="m",
            max_retries=0,
            http_async_client=http,
        )
        text, meta, error = "", {}, None
        try:
            async for chunk in llm.astream("hi"):
                text += str(chunk.content)
                meta.update(chunk.response_metadata or {})
        except Exception as e:
            error = e
        try:
            whole = await llm.ainvoke("hi")
            whole_error = None
        except Exception as e:
            whole_error = e
    if style == "error":
        assert text == BEFORE
        assert type(error) is openai.APIError  # the SDK's exception, passed through
        assert error.code == "content_blocked"
        assert isinstance(whole_error, openai.BadRequestError)  # a LangChain subclass of it
        assert whole_error.code == "content_blocked"
    else:
        assert error is None
        assert text == BEFORE + "\n" + REFUSAL
        assert meta["finish_reason"] == "content_filter"
        assert whole.content == REFUSAL
        assert whole.response_metadata["finish_reason"] == "content_filter"


@pytest.mark.parametrize("style", STYLES)
async def test_httpx_sse(fake: FakeUpstream, proxy: ProxyFactory, style: str) -> None:
    p = await start(fake, proxy, style)
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    async with (
        httpx.AsyncClient() as client,
        httpx_sse.aconnect_sse(client, "POST", p.url("/v1/chat/completions"), json=body) as src,
    ):
        assert src.response.status_code == 200
        data = [sse.data async for sse in src.aiter_sse()]
    assert data[-1] == "[DONE]"
    last = json.loads(data[-2])  # nothing is raised: the client reads the event itself
    if style == "error":
        assert last["error"]["code"] == "content_blocked"
    else:
        assert last["choices"][0]["finish_reason"] == "content_filter"


@pytest.mark.parametrize("style", STYLES)
async def test_curl(fake: FakeUpstream, proxy: ProxyFactory, style: str) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    p = await start(fake, proxy, style)
    url = p.url("/v1/chat/completions")
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True})
    streamed = await run(curl, "-sN", url, "-H", "content-type: application/json", "-d", body)
    assert streamed.returncode == 0
    blocks = streamed.stdout.decode().strip().split("\n\n")
    assert blocks[-1] == "data: [DONE]"
    last = json.loads(blocks[-2].removeprefix("data: "))
    whole_body = json.dumps({"model": "m", "messages": MESSAGES})
    args = ["-s", "--fail", url, "-H", "content-type: application/json", "-d", whole_body]
    whole = await run(curl, *args)
    if style == "error":
        assert last["error"]["code"] == "content_blocked"
        assert whole.returncode == 22  # --fail: HTTP 400
    else:
        assert last["choices"][0]["finish_reason"] == "content_filter"
        assert whole.returncode == 0
        assert json.loads(whole.stdout)["choices"][0]["message"]["content"] == REFUSAL


async def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a client program to its end (bounded), killing it if it overstays."""
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# -- Node clients -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """tests/clients/node with its pinned packages installed (npm, once per machine)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to install the Node clients; not on PATH")
    if not _installed():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or not _installed():
            pytest.skip(f"npm could not install the Node clients: {done.stderr[-400:]}")
    return NODE_DIR


def _installed() -> bool:
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    for name, version in wanted.items():
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
            return False
    return True


async def drive(node_dir: Path, client: str, op: str, base: str) -> dict[str, Any]:
    args = json.dumps({"client": client, "op": op, "base": base})
    done = await run("node", "drive.mjs", args, cwd=node_dir)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("style", STYLES)
async def test_openai_node(
    fake: FakeUpstream, proxy: ProxyFactory, node_clients: Path, style: str
) -> None:
    p = await start(fake, proxy, style)
    stream = await drive(node_clients, "openai", "chat_stream", p.base)
    whole = await drive(node_clients, "openai", "chat_whole", p.base)
    if style == "error":
        assert stream["text"] == BEFORE
        assert stream["error"]["name"] == "APIError"
        assert stream["error"]["status"] is None
        assert stream["error"]["code"] == "content_blocked"
        assert whole["error"]["name"] == "BadRequestError"
        assert whole["error"]["status"] == 400
        assert whole["error"]["code"] == "content_blocked"
    else:
        assert stream["error"] is None
        assert stream["text"] == BEFORE + "\n" + REFUSAL
        assert stream["finish_reason"] == "content_filter"
        assert (whole["text"], whole["finish_reason"]) == (REFUSAL, "content_filter")


@pytest.mark.parametrize("style", STYLES)
async def test_huggingface_inference_node(
    fake: FakeUpstream, proxy: ProxyFactory, node_clients: Path, style: str
) -> None:
    p = await start(fake, proxy, style)
    stream = await drive(node_clients, "hf", "chat_stream", p.base)
    whole = await drive(node_clients, "hf", "chat_whole", p.base)
    tgi = await drive(node_clients, "hf", "tgi_stream", p.base)
    # textGenerationStream never reaches /generate_stream: 4.x rewrites the endpoint URL
    # to <endpointUrl>/v1/completions (OpenAI completions), then reads TGI's token.text
    # from it, which that API does not have.
    assert tgi["text"] == ""
    if style == "error":
        assert tgi["error"]["url"] == p.base + "/v1/completions"
        assert stream["text"] == BEFORE
        error = stream["error"]
        assert error["name"] == "InferenceClientProviderApiError"
        assert error["status"] == 200  # the stream's own status: the block came in-band
        assert error["message"].endswith("Blocked by banned rails.")
        assert whole["error"]["name"] == "InferenceClientProviderApiError"
        assert whole["error"]["status"] == 400
        assert whole["error"]["body"]["error"]["code"] == "content_blocked"
    else:
        assert tgi["error"] is None
        assert stream["error"] is None
        assert stream["text"] == BEFORE + "\n" + REFUSAL
        assert stream["finish_reason"] == "content_filter"
        assert (whole["text"], whole["finish_reason"]) == (REFUSAL, "content_filter")

"""proxy.flow.upstream_body: content codings undone incrementally and capped; formats sniffed."""

from __future__ import annotations

import gzip
import zlib

import pytest

from proxy.flow.upstream_body import PIECE, BodyDecoder, Unreadable, sniff
from proxy.wire.chat import CHAT
from proxy.wire.client_json import client_json, error_text, has_duplicate_keys
from proxy.wire.dialect import Kind
from proxy.wire.fields import content_text, index_of
from proxy.wire.sse import Event
from proxy.wire.tgi import TGI_NATIVE

BODY = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n' * 20
RAW_DEFLATE = zlib.compressobj(wbits=-zlib.MAX_WBITS)
PACKED = {
    "gzip": gzip.compress(BODY, mtime=0),
    "x-gzip": gzip.compress(BODY, mtime=0),
    "deflate": zlib.compress(BODY),
    "raw-deflate": RAW_DEFLATE.compress(BODY) + RAW_DEFLATE.flush(),
    "gzip, gzip": gzip.compress(gzip.compress(BODY, mtime=0), mtime=0),
    "identity": BODY,
    "": BODY,
}


@pytest.mark.parametrize("coding", sorted(PACKED))
def test_decoder_undoes_codings_at_every_split(coding: str) -> None:
    packed = PACKED[coding]
    header = "deflate" if coding == "raw-deflate" else coding
    for cut in range(0, len(packed), 7):
        d = BodyDecoder(header)
        assert b"".join([*d.pieces(packed[:cut]), *d.pieces(packed[cut:])]) == BODY
        d.end()


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br"])
def test_unknown_codings_are_unreadable(coding: str) -> None:
    with pytest.raises(Unreadable):
        BodyDecoder(coding)


def test_corrupt_body_is_unreadable() -> None:
    d = BodyDecoder("gzip")
    with pytest.raises(Unreadable):
        list(d.pieces(b"\x1f\x8b\x08\x00 this is not gzip at all"))


def test_a_bomb_is_decoded_a_piece_at_a_time() -> None:
    """50 MB from ~50 kB: only the pieces asked for are decoded (the relay parses each
    before it asks for the next), none larger than a network read."""
    bomb = gzip.compress(b"\0" * (50 << 20), mtime=0)
    pieces = BodyDecoder("gzip").pieces(bomb)
    first = [next(pieces) for _ in range(3)]
    assert [len(p) for p in first] == [PIECE] * 3
    assert sum(len(p) for p in pieces) == (50 << 20) - 3 * PIECE


@pytest.mark.parametrize(
    ("head", "ended", "found"),
    [
        (b'{"a":1}', True, "json"),
        (b"\xef\xbb\xbf  [1]", True, "json"),
        (b"data: x", False, "sse"),
        (b"\n\n: keep-alive\n\n", False, "sse"),
        (b"event: x", False, "sse"),
        (b"da", False, None),
        (b"da", True, "other"),
        (b"\xef\xbb", False, None),
        (b"", False, None),
        (b"  ", True, "empty"),
        (b"<html>", False, "other"),
        (b"Project Falcon", False, "other"),
    ],
)
def test_sniff(head: bytes, ended: bool, found: str | None) -> None:
    assert sniff(head, ended) == found


@pytest.mark.parametrize(
    ("data", "kind", "texts"),
    [
        (b'{"choices":[{"index":0,"delta":{"content":"a"}}],"x":NaN}', Kind.DATA, ["a"]),
        (b'{"choices":[{"index":1.0,"delta":{"content":"a"}}]}', Kind.DATA, ["a"]),
        (b'{"choices":[{"index":true,"delta":{"content":"a"}}]}', Kind.DATA, ["a"]),
        (b'{"choices":[{"index":1.5,"delta":{"content":"a"}}]}', Kind.OPAQUE, []),
        (b'{"choices":[{"index":"0","delta":{"content":"a"}}]}', Kind.OPAQUE, []),
        (b'{"choices":[{"index":0,"delta":{"content":7}}]}', Kind.OPAQUE, []),
        (
            b'{"choices":[{"delta":{"content":[{"type":"text","text":"a"},"b"]}}]}',
            Kind.DATA,
            ["ab"],
        ),
        (b'{"choices":[{"delta":{"content":"a\\ud800"}}]}', Kind.DATA, ["a\ufffd"]),
        (b'{"error":null,"choices":[{"delta":{"content":"a"}}]}', Kind.DATA, ["a"]),
        (b'{"error":{"message":"m"}}', Kind.ERROR, ["error\nmessage\nm"]),
        (b'{"choices":[{"delta":{"content":"\xff"}}]}', Kind.OPAQUE, []),
        (b'"just a string"', Kind.OPAQUE, []),
        (b"{not json", Kind.OPAQUE, []),
    ],
)
def test_chat_events_parse_as_the_client_parses(data: bytes, kind: Kind, texts: list[str]) -> None:
    parsed = CHAT.parse(Event(b"data: " + data + b"\n\n", data))
    assert parsed.kind is kind
    assert sorted(t for _, t in parsed.texts) == sorted(texts)


def test_tgi_final_event_completes_the_stream() -> None:
    data = b'{"token":{"id":2,"text":"!","special":false},"generated_text":"Hi!","details":null}'
    parsed = TGI_NATIVE.parse(Event(b"data:" + data + b"\n\n", data))
    assert (parsed.complete, parsed.end, parsed.ends) == (True, True, [0])


def test_helpers() -> None:
    assert client_json(b"[NaN]")[0] != client_json(b"[NaN]")[0]  # nan
    assert content_text(None) is None
    assert index_of({}) == 0
    assert set(error_text({"error": {"message": "m", "x": ["y", 1]}}).split("\n")) == {
        "error",
        "message",
        "m",
        "x",
        "y",
    }
    with pytest.raises(ValueError, match="not UTF-8"):
        client_json(b'"\xff"')


@pytest.mark.parametrize(
    ("data", "duplicate"),
    [
        (b'{"a":1,"a":2}', True),
        (b'{"a" : 1 , "a" : 2}', True),
        (b'{"c":[{"k":1,"k":1}]}', True),
        (b'{"choices":[{"delta":{"content":"Project Falcon","content":"Hi"}}]}', True),
        (b'{"a": 1, "b": {"c": "x\\": y"}}', False),
        (b'{"x":"a\\":b","y":1}', False),
        (b'{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}', False),
        (b'{"a": NaN, "b": 1}', False),
    ],
)
def test_duplicate_keys_are_seen(data: bytes, duplicate: bool) -> None:
    assert has_duplicate_keys(client_json(data), data) is duplicate

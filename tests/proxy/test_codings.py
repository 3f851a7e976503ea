"""The one content-coding decoder (``proxy.flow.codings``) both request bodies and
upstream responses go through: every coding, fed whole or a byte at a time, capped."""

from __future__ import annotations

import gzip
import zlib

import pytest

from proxy.flow.codings import CodingError, Decoding, Inflate, codings_of

TEXT = b'{"messages": [{"role": "user", "content": "Project Falcon"}]}' * 20


def raw_deflate(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT, mtime=0),
    "x-gzip": gzip.compress(TEXT, mtime=0),
    "deflate": zlib.compress(TEXT),  # RFC 9110's zlib wrapping
}


def fed(coding: str, data: bytes, step: int, limit: int = 1 << 20) -> bytes:
    inflate = Inflate(coding)
    out = b"".join(inflate.feed(data[i : i + step], limit) for i in range(0, len(data), step))
    inflate.end()
    return out


@pytest.mark.parametrize("coding", sorted(ENCODED))
@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_every_coding_whole_or_a_byte_at_a_time(coding: str, step: int) -> None:
    assert fed(coding, ENCODED[coding], step) == TEXT


@pytest.mark.parametrize("step", [1, 1 << 20])
def test_raw_deflate_as_some_peers_send_it(step: int) -> None:
    assert fed("deflate", raw_deflate(TEXT), step) == TEXT


@pytest.mark.parametrize("step", [1, 5, 1 << 20])
def test_gzip_members_in_a_row(step: int) -> None:
    members = gzip.compress(b"ab", mtime=0) + gzip.compress(b"cd", mtime=0)
    assert fed("gzip", members, step) == b"abcd"


def test_the_cap_stops_a_bomb_before_it_grows() -> None:
    bomb = gzip.compress(b"\0" * (10 << 20), mtime=0)
    with pytest.raises(CodingError) as e:
        Inflate("gzip").feed(bomb, 1 << 16)
    assert e.value.problem == "too_large"


@pytest.mark.parametrize(
    ("coding", "data", "problem"),
    [
        ("gzip", b"not gzip at all", "corrupt"),
        ("deflate", zlib.compress(TEXT) + b"trailing", "corrupt"),
        ("gzip", gzip.compress(TEXT, mtime=0)[:-9], "truncated"),
        ("deflate", zlib.compress(TEXT)[:20], "truncated"),
        ("gzip", b"", "truncated"),
    ],
    ids=["not-gzip", "deflate-trailing", "gzip-cut", "deflate-cut", "gzip-empty"],
)
def test_what_is_not_the_coding_is_refused(coding: str, data: bytes, problem: str) -> None:
    with pytest.raises(CodingError) as e:
        fed(coding, data, 1 << 20)
    assert e.value.problem == problem


def test_codings_apply_last_first_and_unknown_ones_are_named() -> None:
    assert codings_of(["identity", "deflate, GZIP"]) == ["deflate", "gzip"]
    decoding = Decoding(["deflate", "gzip"])
    assert decoding.feed(gzip.compress(zlib.compress(TEXT), mtime=0), 1 << 20) == TEXT
    decoding.end()
    with pytest.raises(CodingError) as e:
        codings_of(["gzip, br"])
    assert (e.value.coding, e.value.problem) == ("br", "unknown")


def pieced(coding: str, data: bytes, step: int, size: int) -> list[bytes]:
    inflate = Inflate(coding)
    out = [p for i in range(0, len(data), step) for p in inflate.pieces(data[i : i + step], size)]
    inflate.end()
    return out


@pytest.mark.parametrize("coding", sorted(ENCODED))
@pytest.mark.parametrize(("step", "size"), [(1, 1), (7, 5), (1 << 20, 64), (1 << 20, len(TEXT))])
def test_pieces_decode_every_coding_in_pieces_no_larger_than_asked(
    coding: str, step: int, size: int
) -> None:
    """Every byte comes out, at any split and piece size (one exactly the body's size:
    the end is still found after a full piece)."""
    out = pieced(coding, ENCODED[coding], step, size)
    assert b"".join(out) == TEXT
    assert max(len(p) for p in out) <= size


def test_a_bomb_in_a_later_member_comes_out_a_piece_at_a_time() -> None:
    members = gzip.compress(b"ok", mtime=0) + gzip.compress(b"\0" * (20 << 20), mtime=0)
    pieces = Inflate("gzip").pieces(members, 1 << 16)
    assert next(pieces) == b"ok"
    assert len(next(pieces)) == 1 << 16  # the second member: decoded only as far as asked


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (gzip.compress(TEXT, mtime=0) + b"trailing", "corrupt"),
        (gzip.compress(TEXT, mtime=0)[:-9], "truncated"),
        (raw_deflate(TEXT) + zlib.compress(TEXT), "corrupt"),
    ],
    ids=["gzip-trailing-garbage", "gzip-cut", "deflate-then-more"],
)
def test_pieces_refuse_what_is_not_the_coding(data: bytes, problem: str) -> None:
    coding = "gzip" if data.startswith(b"\x1f\x8b") else "deflate"
    with pytest.raises(CodingError) as e:
        pieced(coding, data, 1 << 20, 64)
    assert e.value.problem == problem

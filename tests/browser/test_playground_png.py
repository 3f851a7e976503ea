"""README's picture of the playground is the demo's, made by ``docs/playground_png.py``."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from docs.playground_png import OUT, PROMPT, TAG, capture, tag_of

ROOT = Path(__file__).parents[2]


def size(png: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_readmes_picture_was_made_from_the_demo_by_the_script() -> None:
    assert (
        "![The playground after a block](docs/playground.png)" in (ROOT / "README.md").read_text()
    )
    made_by = tag_of(OUT.read_bytes())
    # Regenerate with: python docs/playground_png.py
    assert made_by == f"{TAG}: railproxy demo, prompt {PROMPT!r}, blocked"


@pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("chromedriver") is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); not installed here",
)
def test_the_script_regenerates_it(tmp_path: Path) -> None:
    out = tmp_path / "playground.png"
    assert capture(out) == "blocked"
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert tag_of(png) == tag_of(OUT.read_bytes())
    assert size(png)[0] == size(OUT.read_bytes())[0]  # the same page width as README's

"""The pii rail beside Microsoft Presidio's pattern recognizers on the same corpus (bench
only: not a dependency; ``pip install presidio-analyzer`` first).

Presidio's ``AnalyzerEngine`` needs a spaCy pipeline, and its documented one
(``en_core_web_sm``) is published on GitHub releases, not on PyPI: it cannot be installed
here, and asking for any other (even ``blank:en``) makes Presidio try to download it. So
this runs Presidio's predefined pattern recognizers directly, with no NLP artifacts: the
e-mail, phone (Google's ``phonenumbers`` inside), credit card, US SSN, IBAN and IP
recognizers, each with its own validation (Luhn, IBAN checksum, SSN rules), but without
the context words and the NER a full analyzer adds. A text counts as found when any
recognizer returns a result (Presidio's default ``score_threshold`` is 0). Sockets are
refused while it runs (``tldextract``, used by the e-mail recognizer, would fetch the public
suffix list; it falls back to the snapshot it ships).

``python -m bench.efficacy.presidio_compare`` prints recall per pii evasion class (the
efficacy corpus's pii attacks, then the phone set of ``bench.efficacy.phones``) and false
positives on the corpus's benign texts, each text judged whole.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

from bench.efficacy import phones
from bench.efficacy.corpus import RAIL_CONFIG, attacks, benign
from rails.base import Action, CheckContext
from rails.registry import build_rail
from rails.resources import Resources


def _refuse(*_: object, **__: object) -> Any:
    raise OSError("no network in this bench")


def _recognizers() -> list[Any]:
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        UsSsnRecognizer,
    )
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer

    # The suffix list tldextract ships, never a download.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    email_recognizer.tldextract.extract = offline  # type: ignore[attr-defined]
    return [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
    ]


def _presidio(texts: list[str]) -> list[bool]:
    recognizers = _recognizers()
    return [any(r.analyze(text, r.supported_entities, None) for r in recognizers) for text in texts]


async def _railproxy(texts: list[str]) -> list[bool]:
    rail = build_rail("pii", RAIL_CONFIG["pii"], Resources())
    ctx = CheckContext("output")
    return [(await rail.check(t, ctx)).action is not Action.ALLOW for t in texts]


def main() -> None:
    rows: list[tuple[str, str]] = [(c.evasion, c.text) for c in attacks() if c.rail == "pii"]
    rows += [(f"phone_{evasion}", text) for _, evasion, text in phones.attacks()]
    rows += [("benign (false positives)", c.text) for c in benign() if c.rail == "pii"]
    texts = [text for _, text in rows]
    ours = asyncio.run(_railproxy(texts))
    theirs = _presidio(texts)
    table: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for (kind, _), a, b in zip(rows, ours, theirs, strict=True):
        row = table[kind]
        row[0] += a
        row[1] += b
        row[2] += 1
    print("| class | railproxy pii | Presidio pattern recognizers |")
    print("|---|---:|---:|")
    for kind in sorted(table, key=lambda k: (k.startswith("benign"), k)):
        a, b, n = table[kind]
        print(f"| {kind} | {a}/{n} | {b}/{n} |")
    attack = [(a, b) for (k, _), a, b in zip(rows, ours, theirs, strict=True) if "benign" not in k]
    total = len(attack)
    a, b = sum(x for x, _ in attack), sum(y for _, y in attack)
    print(f"| **all attacks** | {a}/{total} | {b}/{total} |")


if __name__ == "__main__":
    main()

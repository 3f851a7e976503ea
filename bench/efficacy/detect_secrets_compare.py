"""The secrets rail beside Yelp's ``detect-secrets`` on the same corpus (bench only: not
a dependency; ``pip install detect-secrets`` first).

``python -m bench.efficacy.detect_secrets_compare`` checks each secrets attack and each
benign text with the ``secrets`` rail (defaults, whole text, no streaming) and with
detect-secrets 1.x (default plugins and filters, each text scanned as one file with
``SecretsCollection.scan_file``), and prints recall per kind and false positives.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
from pathlib import Path

from bench.efficacy.corpus import RAIL_CONFIG, Case, attacks, benign
from rails.base import Action, CheckContext
from rails.registry import build_rail
from rails.resources import Resources


def _detect_secrets(cases: list[Case]) -> list[bool]:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    found = []
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        for i, case in enumerate(cases):
            path = Path(tmp) / f"case{i}.txt"
            path.write_text(case.text + "\n", encoding="utf-8")
            collection = SecretsCollection()
            collection.scan_file(str(path))
            found.append(bool(list(collection)))
    return found


async def _railproxy(cases: list[Case]) -> list[bool]:
    rail = build_rail("secrets", RAIL_CONFIG["secrets"], Resources())
    ctx = CheckContext("output")
    return [(await rail.check(c.text, ctx)).action is not Action.ALLOW for c in cases]


def main() -> None:
    cases = [c for c in attacks() if c.rail == "secrets"]
    cases += [c for c in benign() if c.rail == "secrets"]
    ours = asyncio.run(_railproxy(cases))
    theirs = _detect_secrets(cases)
    table: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for case, a, b in zip(cases, ours, theirs, strict=True):
        kind = "benign (false positives)" if not case.attack else case.evasion
        row = table[kind]
        row[0] += a
        row[1] += b
        row[2] += 1
    print("| kind and evasion | railproxy secrets | detect-secrets |")
    print("|---|---:|---:|")
    for kind in sorted(table, key=lambda k: (k.startswith("benign"), k)):
        a, b, n = table[kind]
        print(f"| {kind} | {a}/{n} | {b}/{n} |")


if __name__ == "__main__":
    main()

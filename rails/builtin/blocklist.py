"""The ``blocklist`` rail: block text containing any configured word or phrase.

Matching is whole-word (a term may not be preceded or followed by a ``\\w`` character),
case-insensitive and Unicode-normalized: text and terms are both folded with NFKC and
``casefold`` (so full-width letters and ligatures such as ``ﬁ`` match), and any run of
whitespace in a phrase matches any run of whitespace in the text (``"project falcon"``
matches ``"Project\\n  Falcon"``).

```yaml
rails:
  config:
    banned: {type: blocklist, words: [falcon, project falcon]}
```
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field

from rails.base import CheckContext, RailConfig, Resources, Verdict


def fold(text: str) -> str:
    """Caseless, compatibility-normalized form (NFKC, casefold, NFKC again as casefold
    can produce non-normalized sequences)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _key(term: str) -> str:
    return " ".join(fold(term).split())


def _not_blank(term: str) -> str:
    if not _key(term):
        raise ValueError("a blocklist term must not be blank")
    return term


class BlocklistConfig(RailConfig):
    words: list[Annotated[str, AfterValidator(_not_blank)]] = Field(min_length=1)


class BlocklistRail:
    """Blocks on the first term found; the reason names the configured term."""

    type_name: ClassVar[str] = "blocklist"
    local: ClassVar[bool] = True  # never waits: the pipeline runs it inline
    Config: ClassVar[type[RailConfig]] = BlocklistConfig

    def __init__(self, name: str, config: BlocklistConfig, resources: Resources) -> None:
        self.name = name
        self.config: RailConfig = config
        self._terms = {_key(word): word for word in config.words}
        # Longest first, so the reason names "project falcon" rather than "project".
        keys = sorted(self._terms, key=len, reverse=True)
        body = "|".join(r"\s+".join(map(re.escape, key.split(" "))) for key in keys)
        self._pattern = re.compile(rf"(?<!\w)(?:{body})(?!\w)")

    async def check(self, text: str, ctx: CheckContext) -> Verdict:
        match = self._pattern.search(fold(text))
        if match is None:
            return Verdict.allow()
        key = " ".join(match.group().split())
        term = self._terms.get(key, key)
        return Verdict.block(f"matched blocklisted term {term!r}")

"""One stream's events, read as its client reads them.

A protocol class (``proxy.wire.dialect``) parses each event on its own; an
``EventReader`` adds what only the whole stream knows:

* tool-call arguments arrive as fragments of JSON source: each channel's fragments go
  through an ``Unescaper`` so the rails judge the text the client's JSON parser will
  produce (an escape split across two fragments included); an event whose fragment
  changed that way is marked ``escaped`` (a mask cannot be written back into it);
* which choices have finished, and whether the stream has (usage chunk, error): text
  that arrives after that is ``Kind.LATE``, since its window was already closed and
  judged;
* every other string of an event (``Parsed.rest``: ids, model, finish reasons, fields no
  reader knows) is judged once per stream on the ``OTHER`` channel: the envelope repeats
  in every chunk, so only strings not seen before cost a check.
"""

from __future__ import annotations

from proxy.wire.dialect import Dialect, Kind, Parsed
from proxy.wire.fields import OTHER
from proxy.wire.json_text import Unescaper
from proxy.wire.sse import Event
from rails.base import ChannelKey

SEEN_MAX = 1024  # past this many distinct strings, each is judged every time it comes


class EventReader:
    def __init__(self, dialect: Dialect) -> None:
        self._parse = dialect.stream_parser()
        self._args: dict[ChannelKey, Unescaper] = {}
        self._finished: set[int] = set()
        self._ended = False
        self._seen: set[str] = set()  # other strings already judged (bounded: SEEN_MAX)

    def read(self, ev: Event) -> Parsed:
        p = self._parse(ev)
        if p.kind is not Kind.DATA:
            return p
        if p.rest:
            self._add_rest(p)
        if p.texts:
            if self._late(p):
                p.kind = Kind.LATE
                return p
            self._unescape(ev, p)
        if p.ends:
            self._finished.update(p.ends)
        if p.end:
            self._ended = True
        return p

    def _add_rest(self, p: Parsed) -> None:
        new = [s for s in p.rest if s not in self._seen]
        if not new:
            return
        if len(self._seen) < SEEN_MAX:
            self._seen.update(new)
        p.texts.append((OTHER, "\n".join(new) + "\n"))

    def _late(self, p: Parsed) -> bool:
        if self._ended:
            return True
        finished = self._finished
        return bool(finished) and any(key[0] in finished for key, _ in p.texts if key[0] >= 0)

    def _unescape(self, ev: Event, p: Parsed) -> None:
        texts = p.texts
        for i, (key, text) in enumerate(texts):
            if key[1] != "tool_arguments":
                continue
            u = self._args.get(key)
            if u is None:
                u = self._args[key] = Unescaper()
            out = u.feed(text)
            if u.altered:
                ev.escaped = True
                texts[i] = (key, out)

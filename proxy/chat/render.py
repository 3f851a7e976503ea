"""What ``railproxy chat`` prints: pure functions from a reply's outcome to text.

Styling (ANSI) is used only when ``tty`` is true; every line is plain, readable text
without it. Text from the server goes through ``clean`` so a reply cannot drive the
terminal with escape sequences.
"""

from __future__ import annotations

import re

from proxy.chat.wire import Abort, End, Failure

ALERT = "\x1b[1;31m"
DIM = "\x1b[2m"
RESET = "\x1b[0m"
PROMPT = "you> "
NOT_KEPT = "[this exchange was not added to the history]"
HELP = "/reset clears the history, /exit or Ctrl-D quits, Ctrl-C stops a reply."
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` with control characters (escape sequences included) shown as ``\\xNN``;
    newlines and tabs are kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def style(text: str, code: str, tty: bool) -> str:
    return f"{code}{text}{RESET}" if tty else text


def who(abort: Abort) -> str:
    """The rail that blocked, as a phrase."""
    return f"rail '{clean(abort.rail)}'" if abort.rail else "a content filter"


def banner(base_url: str, model: str, streaming: bool, config_id: str | None) -> str:
    mode = "streaming" if streaming else "not streaming"
    config = f", rails config {config_id!r}" if config_id else ""
    return f"railproxy chat: {base_url}, model {model!r}, {mode}{config}.\n{HELP}\n"


def finish(end: End | None, shown: str, tty: bool, retract: bool = True) -> str:
    """What to print once a reply ended: ``end`` is how (None: complete), ``shown`` the
    text already printed. With ``retract``, an abort marks ``shown`` as retracted."""
    brk = "\n" if shown and not shown.endswith("\n") else ""
    if end is None:
        return brk
    if isinstance(end, Failure):
        return brk + _lines([style(f"[error: {clean(end.message)}]", ALERT, tty), NOT_KEPT])
    return brk + _lines(abort_lines(end, shown if retract else "", tty))


def abort_lines(abort: Abort, retracted: str, tty: bool) -> list[str]:
    """The block line, then (when text was already shown) the retraction mark, then the
    history note. The shown text is not printed again: it stands above, once."""
    message = f": {clean(abort.message)}" if abort.message else ""
    lines = [style(f"[blocked by {who(abort)}{message}]", ALERT, tty)]
    if retracted:
        n = len(retracted)
        mark = f"[retracted: the {n} characters above were blocked by {who(abort)}]"
        lines.append(style(mark, DIM, tty))
    return [*lines, NOT_KEPT]


def stopped(shown: str, tty: bool) -> str:
    """What to print when Ctrl-C stopped a reply."""
    brk = "\n" if shown and not shown.endswith("\n") else ""
    return brk + _lines([style("[stopped]", DIM, tty), NOT_KEPT])


def _lines(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)

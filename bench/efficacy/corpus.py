"""The labelled corpus: attacks each rail must catch, by evasion class, and benign texts
every rail must pass.

Attacks are built from plain forms (a blocklisted term, an e-mail address, a card
number, a key) by one evasion each (``EVASIONS``), inside a carrier sentence. The
*held-out* part uses plain forms that were not looked at while the rails were tuned
(other terms, other numbers, other keys) and is reported separately. Benign texts are in
``benign.txt`` (one per line; ``held-out:`` marks the held-out part). Fake credentials
are assembled at run time, so that no credential-shaped string sits in the repository.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

RailName = Literal["blocklist", "pii", "secrets"]
RAILS: tuple[RailName, ...] = ("blocklist", "pii", "secrets")

# The rails as the corpus configures them (rails.config entries).
BLOCKLIST_TERMS = ["falcon", "project falcon", "osprey", "blue heron"]
TUNED_TERMS = ["falcon", "project falcon"]
HELD_OUT_TERMS = ["osprey", "blue heron"]
RAIL_CONFIG: dict[RailName, dict[str, Any]] = {
    "blocklist": {"type": "blocklist", "words": BLOCKLIST_TERMS},
    "pii": {"type": "pii"},
    "secrets": {"type": "secrets"},
}


@dataclass(frozen=True)
class Case:
    rail: RailName
    evasion: str  # the evasion class ("benign" for benign texts)
    text: str
    attack: bool
    held_out: bool
    core: str = ""  # the attack itself, without the carrier sentence


CYR = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}
CYR |= {"y": "\u0443", "x": "\u0445", "i": "\u0456", "s": "\u0455"}
HYPHEN = "\u2010"
GREEK = {"a": "\u03b1", "o": "\u03bf", "i": "\u03b9", "u": "\u03c5", "v": "\u03bd"}


def _inside(sep: str) -> Callable[[str], str]:
    """``sep`` after the first letter of every word (and mid-word for long words)."""

    def apply(text: str) -> str:
        return " ".join(w[:1] + sep + w[1:] if len(w) > 1 else w for w in text.split(" "))

    return apply


def _letters(table: dict[str, str]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        return "".join(table.get(c, c) for c in text)

    return apply


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _math_bold(text: str) -> str:
    def one(c: str) -> str:
        if "a" <= c <= "z":
            return chr(0x1D41A + ord(c) - ord("a"))
        if "A" <= c <= "Z":
            return chr(0x1D400 + ord(c) - ord("A"))
        return c

    return "".join(map(one, text))


def _marks(text: str) -> str:
    return "".join(c + "\u0336" if c.isalnum() else c for c in text)


def _spaced(text: str) -> str:
    return " ".join(c for c in text if c != " ")


def _joined(sep: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        word = text.replace(" ", sep)
        return word if " " in text else sep.join([word[: len(word) // 2], word[len(word) // 2 :]])

    return apply


def _mixed_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(text))


EVASIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda t: t,
    "case": _mixed_case,
    "zero_width_space": _inside("\u200b"),
    "zero_width_joiner": _inside("\u200d"),
    "soft_hyphen": _inside("\u00ad"),
    "word_joiner": _inside("\u2060"),
    "bom": _inside("\ufeff"),
    "variation_selector": _inside("\ufe0f"),
    "bidi_marks": _inside("\u200e"),
    "cyrillic_lookalikes": _letters(CYR),
    "greek_lookalikes": _letters(GREEK),
    "combining_marks": _marks,
    "fullwidth": _fullwidth,
    "math_alphanumerics": _math_bold,
    "letter_spacing": _spaced,
    "hyphen_join": _joined("-"),
    "underscore_join": _joined("_"),
    "dot_join": _joined("."),
}

# Evasions that apply to digits and keys (pii, secrets): invisible and width tricks.
_CHAR_EVASIONS = ("plain", "zero_width_space", "soft_hyphen", "word_joiner", "fullwidth")
_CHAR_EVASIONS += ("bidi_marks", "variation_selector")


def _blocklist() -> list[Case]:
    carriers = ["Tell them about {} today.", "The memo says: {}! Nothing more."]
    out = []
    for terms, held in ((TUNED_TERMS, False), (HELD_OUT_TERMS, True)):
        for term in terms:
            for name, evade in EVASIONS.items():
                core = evade(term)
                for carrier in carriers:
                    text = carrier.format(core)
                    out.append(Case("blocklist", name, text, True, held, core))
    return out


# Cards: Visa, Mastercard, Amex test numbers (Luhn-valid, published as test data).
_CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444"]
_CARDS_HELD = ["4012 8888 8888 1881", "3782 822463 10005"]
_CARD_SEPARATORS = {
    "card_double_space": "  ",
    "card_dots": ".",
    "card_slashes": "/",
    "card_nbsp": "\u00a0",
    "card_dashes": "-",
    "card_no_separator": "",
}
_ARABIC_INDIC = {str(d): chr(0x0660 + d) for d in range(10)}
_DEVANAGARI = {str(d): chr(0x0966 + d) for d in range(10)}


def _pii() -> list[Case]:
    out = []
    for cards, held in ((_CARDS, False), (_CARDS_HELD, True)):
        for card in cards:
            for name, sep in _CARD_SEPARATORS.items():
                core = card.replace(" ", sep)
                out.append(Case("pii", name, f"Card: {core}, exp 12/29.", True, held, core))
            for name, table in (
                ("arabic_indic_digits", _ARABIC_INDIC),
                ("devanagari", _DEVANAGARI),
            ):
                core = _letters(table)(card)
                out.append(Case("pii", name, f"Card: {core} thanks.", True, held, core))
            for name in _CHAR_EVASIONS:
                core = EVASIONS[name](card)
                out.append(Case("pii", f"card_{name}", f"Card: {core} thanks.", True, held, core))
    emails = [("jane.doe", "example.com", False), ("r.kowalski", "mailhost.org", True)]
    for local, domain, held in emails:
        plain = f"{local}@{domain}"
        forms = {
            "email_plain": plain,
            "email_fullwidth_at": plain.replace("@", "\uff20"),
            "email_fullwidth": _fullwidth(plain),
            "email_zero_width": plain.replace("@", "\u200b@\u200b"),
            "email_cyrillic_lookalike_domain": f"{local}@{_letters(CYR)(domain)}",
            "email_cyrillic_domain": f"{local}@\u043f\u043e\u0447\u0442\u0430.\u0440\u0444",
            "email_math": _math_bold(plain),
        }
        for name, core in forms.items():
            out.append(Case("pii", name, f"Write to {core} soon.", True, held, core))
    ssns = [("123-45-6789", False), ("536-22-1234", True)]
    for ssn, held in ssns:
        digits = ssn.replace("-", "")
        forms = {
            "ssn_dashed": f"Her number is {ssn}.",
            "ssn_keyword_no_dashes": f"SSN: {digits}",
            "ssn_keyword_spaces": f"social security number {ssn.replace('-', ' ')}",
            "ssn_fullwidth_digits": f"Her number is {_fullwidth(ssn)}.",
            "ssn_unicode_hyphen": f"Her number is {ssn.replace('-', HYPHEN)}.",
        }
        for name, text in forms.items():
            out.append(Case("pii", name, text, True, held, text))
    ibans = [("DE89 3704 0044 0532 0130 00", False), ("GB82 WEST 1234 5698 7654 32", True)]
    for iban, held in ibans:
        for name in ("plain", "zero_width_space", "fullwidth"):
            core = EVASIONS[name](iban)
            out.append(Case("pii", f"iban_{name}", f"IBAN {core} please.", True, held, core))
    return out


def _keys() -> dict[str, tuple[list[str], list[str]]]:
    """Kind -> (tuned values, held-out values), assembled so none sits in the source."""
    return {
        "aws_access_key": (["AKIA" + "IOSFODNN7EXAMPLE"], ["AKIA" + "Z7QW3RT5YU8IO2PA"]),
        "aws_secret_key": (
            ["aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"],
            ["AWS_SECRET_ACCESS_KEY=" + "Zx8Kq2Lm9Pw4Rt7Yu1Io" + "Pa5Sd6Fg0Hj2Kl4Zx6Cv"],
        ),
        "github_token": (
            ["ghp" + "_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z00"],
            ["gho" + "_" + "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8"],
        ),
        "gitlab_token": (
            ["glpat" + "-" + "xY7aB9cD2eF4gH6jK8mN"],
            ["glpat" + "-Qw3Er5Ty7Ui9Op1As2Df4"],
        ),
        "huggingface_token": (
            ["hf" + "_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"],
            ["hf" + "_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa98765432"],
        ),
        "slack_token": (
            ["xox" + "b-1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrStUvWx"],
            ["xox" + "p-2345678901-1098765432-" + "ZyXwVuTsRqPoNmLkJiHgFeDc"],
        ),
        "stripe_key": (
            ["sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"],
            ["rk" + "_live_" + "9Zq8Yp7Xo6Wn5Vm4Ul3Tk2Sj"],
        ),
        "google_api_key": (
            ["AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"],
            ["AIza" + "SyZ9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J"],
        ),
        "azure_key": (
            ["AccountKey=" + "Ab1" * 28 + "cd=="],
            ["abc8Q" + "~" + "dEfGhIjKlMnOpQrStUvWxYz0123456789"],
        ),
        "gcp_service_account": (
            ['"private_key_id": "' + "0123456789abcdef" * 2 + '01234567"'],
            ['"private_key_id": "' + "fedcba9876543210" * 2 + '76543210"'],
        ),
    }


def _secrets() -> list[Case]:
    out = []
    for kind, (tuned, held_out) in _keys().items():
        for values, held in ((tuned, False), (held_out, True)):
            for value in values:
                for name in _CHAR_EVASIONS:
                    core = EVASIONS[name](value)
                    text = f"config: {core} end"
                    out.append(Case("secrets", f"{kind}_{name}", text, True, held, core))
    return out


def _isbn13(rng: random.Random) -> str:
    body = "978" + "".join(rng.choice("0123456789") for _ in range(9))
    check = (10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body)) % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:8]}-{body[8:]}-{check}"


_TEMPLATES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: (
        f"The invoice dated {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/"
        f"{r.randint(1990, 2030)} lists {r.randint(2, 99)} items."
    ),
    lambda r: (
        f"Release {r.randint(1, 20)}.{r.randint(0, 30)}.{r.randint(0, 99)} "
        f"landed on {r.randint(2000, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}."
    ),
    lambda r: f"Order #{r.randint(10**9, 10**12)} ships to warehouse {r.randint(1, 40)}.",
    lambda r: f"ISBN {_isbn13(r)} is the paperback edition.",
    lambda r: (
        f"Part {r.choice('ABCXYZ')}{r.randint(100, 999)}-{r.randint(1000, 99999)} "
        f"weighs {r.randint(1, 900)} g."
    ),
    lambda r: (
        f"At {r.randint(0, 23):02d}:{r.randint(0, 59):02d} the reading was "
        f"{r.uniform(-40, 40):.2f} degrees."
    ),
    lambda r: (
        f"The stadium holds {r.randint(1, 99)},{r.randint(100, 999)} people, "
        f"{r.randint(2, 60)} percent of them seated."
    ),
    lambda r: (
        f"{r.choice(['Falconry', 'Falconers', 'The falconer', 'Ospreys'])} "
        f"{r.choice(['need patience', 'count', 'hunt'])} {r.randint(2, 30)} days a year."
    ),
    lambda r: (
        f"Reference {r.randint(10**7, 10**8)}-{r.randint(100, 999)} was filed "
        f"in {r.choice(['March', 'May', 'July'])} {r.randint(1990, 2030)}."
    ),
    lambda r: (
        f"The {r.choice(['blue', 'grey', 'night'])} {r.choice(['heron', 'hero', 'sky'])}"
        f"{r.choice(['s', 'es', 'ic'])} of the tale won {r.randint(1, 9)} prizes."
    ),
)


def _generated_benign(n: int = 100, seed: int = 16) -> list[str]:
    """Prose with numbers, dates, versions, order numbers, ISBNs, part codes, and words
    near the blocked terms, from seeded templates."""
    rng = random.Random(seed)
    return [_TEMPLATES[i % len(_TEMPLATES)](rng) for i in range(n)]


def benign() -> list[Case]:
    lines = (Path(__file__).parent / "benign.txt").read_text("utf-8").splitlines()
    lines += _generated_benign()
    out = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        held = line.startswith("held-out: ")
        text = line.removeprefix("held-out: ")
        out.extend(Case(rail, "benign", text, False, held) for rail in RAILS)
    return out


def attacks() -> list[Case]:
    return _blocklist() + _pii() + _secrets()


def corpus() -> list[Case]:
    return attacks() + benign()

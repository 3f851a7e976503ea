"""The import rules of the tree (README, Development): the dependency runs one way.

- ``rails`` never imports ``proxy`` (the engine is HTTP-free and the public Python API);
- ``proxy.wire`` (protocols, sans-IO) imports neither ``proxy.flow`` nor ``proxy.run``;
- ``proxy.observe`` and ``proxy.wire`` never import the app's state keys' users upward
  (``flow``, ``run``, ``playground``, ``app``);
- nothing imports the terminal client ``proxy.chat`` but the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(package: str) -> dict[str, set[str]]:
    """Module path -> the ``proxy``/``rails`` modules it imports (absolute names)."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[module] = {n for n in names if n.split(".")[0] in ("proxy", "rails")}
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in imports(package).items()
        for name in sorted(names)
        if name.startswith(forbidden) or name in {f.rstrip(".") for f in forbidden}
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("rails", ("proxy",)),
        ("proxy.wire", ("proxy.flow", "proxy.run", "proxy.playground", "proxy.app")),
        ("proxy.observe", ("proxy.flow", "proxy.run", "proxy.playground", "proxy.app")),
    ],
)
def test_no_upward_imports(package: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(package, forbidden) == []


def test_only_the_cli_imports_the_chat_client() -> None:
    users = [
        module
        for module, names in imports("proxy").items()
        if not module.startswith("proxy.chat") and any(n.startswith("proxy.chat") for n in names)
    ]
    assert users == ["proxy.cli"]


def test_the_rule_is_checked_against_real_imports() -> None:
    """The checker sees imports at all (a test that could not fail would be no test)."""
    assert "proxy.wire.dialect" in imports("proxy.wire")["proxy.wire.chat"]
    assert any(n.startswith("rails") for n in imports("proxy.flow")["proxy.flow.respond"])


def test_the_rail_contract_knows_no_http() -> None:
    """rails/base.py (the Rail contract) imports no HTTP client at run time; network rails
    get their session from rails/resources.py, the one module of rails/ that says so."""
    tree = ast.parse((ROOT / "rails/base.py").read_text(encoding="utf-8"))
    runtime = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name for n in runtime if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module or "" for n in runtime if isinstance(n, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] == "aiohttp"}
    assert "rails.resources" not in names  # only under TYPE_CHECKING

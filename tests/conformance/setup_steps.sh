# Sourced by setup.sh and setup_llamacpp.sh: timed steps whose output goes to $LOG.
# shellcheck shell=bash

SCRIPT="$(basename "$0")"

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "$SCRIPT: FAILED: $*" >&2; exit 1; }

# step NAME CMD...: run CMD with its output in $LOG; on failure show the log's tail.
step() {
    local name="$1" t0
    shift
    t0="$(now)"
    echo "== $name"
    if ! "$@" >>"$LOG" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$LOG" | tail -n 40 >&2
        fail "step '$name' (log: $LOG)"
    fi
    echo "   $name: $(elapsed "$t0") s"
}

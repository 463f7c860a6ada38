#!/usr/bin/env bash
# A longer fuzz campaign than CI's fixed seed set (tests/fuzz/): fresh seeds, N minutes split
# between the targets, every finding written as a reproducer file.
#
#   scripts/fuzz.sh --minutes 30 [--seed S] [--out DIR]
#
# Findings (panics; and on an abort or hang the case in progress) land in DIR (default
# target/fuzz-findings) as <target>-<hash>.bin; copy one into tests/fuzz/regressions/ to keep
# it as a regression case once it is fixed. Needs the fixtures (scripts/fixtures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=5
seed=""
out="$PWD/target/fuzz-findings"
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: scripts/fuzz.sh [--minutes N] [--seed S] [--out DIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
if [ -z "${ASTROCLIP_FIXTURES:-}" ]; then
    eval "$(scripts/fixtures.sh | tail -n 1 | sed "s/^/export /")"
fi
export ASTROCLIP_FUZZ_MINUTES="$minutes" ASTROCLIP_FUZZ_OUT="$out" ASTROCLIP_FUZZ_SCRATCH="$out/scratch"
[ -n "$seed" ] && export ASTROCLIP_FUZZ_SEED="$seed"
status=0
# The whole workspace, as the test command builds it: a narrower selection (-p, --test) unifies
# features differently and compiles burn a second time.
cargo test --workspace -- --ignored campaign_for_minutes --nocapture || status=$?
# An abort (allocation) or a crash cannot save its own case: it is the scratch directory's
# current.bin, from the target named in current-target.
case_file="$out/scratch/current.bin"
if [ "$status" -ne 0 ] && [ -f "$case_file" ]; then
    keep="$out/$(cat "$out/scratch/current-target")-crash-$(sha256sum "$case_file" | cut -c1-16).bin"
    cp "$case_file" "$keep"
    echo "the case in progress when the campaign stopped: $keep"
fi
echo "findings in $out:"
ls "$out" | grep -v '^scratch$' || echo "  none"
exit "$status"

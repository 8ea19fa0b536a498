#!/usr/bin/env bash
# Runs every cargo-fuzz target in this directory for a bounded time.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 60)
#
# cargo fuzz needs nightly compiler features; RUSTC_BOOTSTRAP=1 unlocks them on the stable
# toolchain. cargo-fuzz is installed with `cargo install` when it is missing.
set -euo pipefail

cd "$(dirname "$0")"
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/palisade-fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

for target in $(cargo fuzz list); do
    echo "== fuzzing $target for ${seconds}s"
    # New inputs go to corpus/, which is not committed. The committed starting inputs are in seeds/.
    mkdir -p "corpus/$target" "seeds/$target"
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- -max_total_time="$seconds" -rss_limit_mb=2048
done

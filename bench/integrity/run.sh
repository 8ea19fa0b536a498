#!/usr/bin/env bash
# Times `palisade integrity baseline` and `verify` against AIDE (init and check, same attributes)
# and b3sum over the same regular files, on /usr and on a generated tree of small files.
#
# Usage: bench/integrity/run.sh            (as root; installs aide and b3sum when missing)
# Environment: RUNS (timed runs per command, default 3), TREE_FILES (default 100000),
#              WORK (scratch directory), CARGO_TARGET_DIR, DATASETS ("usr tree" by default),
#              PALISADE (a release binary to use instead of building one).
# Every command runs once untimed first, so all figures are with a warm page cache.
set -euo pipefail

RUNS=${RUNS:-3}
TREE_FILES=${TREE_FILES:-100000}
WORK=${WORK:-/var/tmp/palisade-bench-integrity}
DATASETS=${DATASETS:-"usr tree"}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/palisade-target-bench}
PALISADE=${PALISADE:-}
THREADS=$(nproc)

fail() { echo "error: $*" >&2; exit 2; }

install_tools() {
    if ! command -v aide >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aide >/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aide >/dev/null; } ||
            fail "cannot install AIDE: run apt-get install aide as root"
    fi
    if ! command -v b3sum >/dev/null && [ ! -x "$HOME/.cargo/bin/b3sum" ]; then
        cargo install --locked b3sum || fail "cannot install b3sum: run cargo install b3sum"
    fi
    B3SUM=$(command -v b3sum || echo "$HOME/.cargo/bin/b3sum")
    if [ -z "$PALISADE" ]; then
        (cd "$REPO" && cargo build --release -q -p palisade-cli) || fail "cannot build palisade"
        PALISADE=$CARGO_TARGET_DIR/release/palisade
    fi
}

# 100 directories of TREE_FILES/100 files of 1 to 4 KiB each.
generate_tree() {
    local tree=$1
    [ -f "$tree/.complete-$TREE_FILES" ] && return
    rm -rf "$tree"
    python3 - "$tree" "$TREE_FILES" <<'PY'
import os, random, sys
root, count = sys.argv[1], int(sys.argv[2])
random.seed(1)
per_directory = max(1, count // 100)
for index in range(count):
    directory = os.path.join(root, f"d{index // per_directory:03d}")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"f{index:06d}"), "wb") as file:
        file.write(random.randbytes(random.randint(1024, 4096)))
PY
    touch "$tree/.complete-$TREE_FILES"
}

# Runs a command once untimed, then RUNS times, and prints the median wall time in seconds.
# Exit statuses below 8 count as success: verify exits 1 on drift, aide --check 1 to 7.
median_seconds() {
    local times=() start end status
    "$@" >/dev/null 2>&1 || { status=$?; [ "$status" -lt 8 ] || fail "$* exited with $status"; }
    for _ in $(seq "$RUNS"); do
        start=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || { status=$?; [ "$status" -lt 8 ] || fail "$* exited with $status"; }
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc -l)")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

write_aide_config() {
    local name=$1 root=$2
    cat > "$WORK/$name-aide.conf" <<CONF
database_in=file:$WORK/$name-aide.db
database_out=file:$WORK/$name-aide.db.new
gzip_dbout=no
num_workers=$THREADS
report_url=stdout
Palisade = ftype+p+u+g+s+m+c+i+n+l+xattrs+caps+sha256
$root Palisade
CONF
}

aide_init() { aide --config="$WORK/$1-aide.conf" --init && mv "$WORK/$1-aide.db.new" "$WORK/$1-aide.db"; }
aide_check() { aide --config="$WORK/$1-aide.conf" --check; }
b3sum_files() { find "$1" -type f -print0 | xargs -0 -n 5000 "$B3SUM" >/dev/null; }

row() { # label dataset seconds files
    printf '| %s | %s | %.3f | %.0f |\n' "$1" "$2" "$3" "$(echo "$4 / $3" | bc -l)"
}

main() {
    [ "$(id -u)" = 0 ] || fail "run as root: AIDE and palisade must read every file"
    command -v bc >/dev/null || fail "bc is missing: apt-get install bc"
    mkdir -p "$WORK"
    install_tools

    echo "palisade integrity benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), RUNS=$RUNS, warm cache"
    echo "AIDE $(aide --version 2>&1 | head -1 | awk '{print $2}') with num_workers=$THREADS; $("$B3SUM" --version)"
    echo
    echo "| command | dataset | median s | regular files/s |"
    echo "| --- | --- | --- | --- |"

    local summary=()
    for dataset in $DATASETS; do
        local root
        case $dataset in
            usr) root=/usr ;;
            tree) root=$WORK/tree; generate_tree "$root" ;;
            *) fail "unknown dataset $dataset: use usr or tree" ;;
        esac
        local files manifest=$WORK/$dataset.manifest
        files=$(find "$root" -type f | wc -l)
        write_aide_config "$dataset" "$root"

        local baseline baseline_sha256 verify fast init check b3
        baseline=$(median_seconds "$PALISADE" integrity baseline "$root" -o "$manifest")
        baseline_sha256=$(median_seconds "$PALISADE" integrity baseline --algorithm sha256 "$root" -o "$manifest.sha256")
        verify=$(median_seconds "$PALISADE" integrity verify "$manifest" --format json)
        fast=$(median_seconds "$PALISADE" integrity verify --fast "$manifest" --format json)
        init=$(median_seconds aide_init "$dataset")
        check=$(median_seconds aide_check "$dataset")
        b3=$(median_seconds b3sum_files "$root")

        row "palisade integrity baseline (blake3)" "$dataset" "$baseline" "$files"
        row "palisade integrity baseline --algorithm sha256" "$dataset" "$baseline_sha256" "$files"
        row "palisade integrity verify" "$dataset" "$verify" "$files"
        row "palisade integrity verify --fast" "$dataset" "$fast" "$files"
        row "aide --init (sha256)" "$dataset" "$init" "$files"
        row "aide --check (sha256)" "$dataset" "$check" "$files"
        row "b3sum" "$dataset" "$b3" "$files"

        summary+=("$(printf '%s: %s files; baseline/aide-init speed-up %.1fx (goal >= 10x); baseline time / b3sum time %.2f (goal <= 1.5); sha256 baseline/aide-init speed-up %.1fx; verify/aide-check speed-up %.1fx; fast verify %.0f files/s (goal >= 100000)' \
            "$dataset" "$files" "$(echo "$init / $baseline" | bc -l)" "$(echo "$baseline / $b3" | bc -l)" \
            "$(echo "$init / $baseline_sha256" | bc -l)" "$(echo "$check / $verify" | bc -l)" "$(echo "$files / $fast" | bc -l)")")
    done
    echo
    printf '%s\n' "${summary[@]}"
}

main "$@"

#!/usr/bin/env bash
# Times `palisade integrity baseline` and `verify` against AIDE (init and check, same attributes)
# and b3sum over the same regular files, on /usr and on a generated tree of small files.
#
# Usage: bench/integrity/run.sh            (as root; installs aide and b3sum when missing)
# Environment: RUNS (timed runs per command, default 3), TREE_FILES (default 100000),
#              WORK (scratch directory), CARGO_TARGET_DIR, DATASETS ("usr tree" by default),
#              PALISADE (a release binary to use instead of building one).
# Every command runs once untimed first, so all figures are with a warm page cache. palisade runs
# with its default thread count (8 per CPU) and once more with as many threads as AIDE has
# workers (one per CPU).
set -euo pipefail

RUNS=${RUNS:-3}
TREE_FILES=${TREE_FILES:-100000}
WORK=${WORK:-/var/tmp/palisade-bench-integrity}
DATASETS=${DATASETS:-"usr tree"}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/palisade-target-bench-integrity}
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

# Runs a shell command once untimed, then RUNS times, and prints the median wall time and the
# median CPU time (user plus system, children included) in seconds. Exit statuses below 8 count
# as success: verify exits 1 on drift, aide --check 1 to 7.
measure() {
    local walls=() cpus=() status record
    record=$(mktemp)
    bash -c "$1" >/dev/null 2>&1 || { status=$?; [ "$status" -lt 8 ] || fail "$1 exited with $status"; }
    for _ in $(seq "$RUNS"); do
        /usr/bin/time -f '%e %U %S' -o "$record" bash -c "$1" >/dev/null 2>&1 ||
            { status=$?; [ "$status" -lt 8 ] || fail "$1 exited with $status"; }
        read -r wall user system < <(tail -n 1 "$record")
        walls+=("$wall")
        cpus+=("$(echo "$user + $system" | bc -l)")
    done
    rm -f "$record"
    local middle=$(( (RUNS + 1) / 2 ))
    echo "$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "${middle}p") $(printf '%s\n' "${cpus[@]}" | sort -n | sed -n "${middle}p")"
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

row() { # label dataset "wall cpu" files
    local wall=${3% *} cpu=${3#* }
    printf '| %s | %s | %.3f | %.0f | %.3f | %.0f |\n' "$1" "$2" "$wall" "$(echo "$4 / $wall" | bc -l)" \
        "$cpu" "$(echo "$4 / $cpu" | bc -l)"
}

ratio() { echo "${1% *} / ${2% *}" | bc -l; }
cpu_ratio() { echo "${1#* } / ${2#* }" | bc -l; }

main() {
    [ "$(id -u)" = 0 ] || fail "run as root: AIDE and palisade must read every file"
    command -v bc >/dev/null || fail "bc is missing: apt-get install bc"
    mkdir -p "$WORK"
    install_tools

    echo "palisade integrity benchmark: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -r), RUNS=$RUNS, warm cache"
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "AIDE $(aide --version 2>&1 | head -1 | awk '{print $2}') with num_workers=$THREADS; $("$B3SUM" --version)"
    echo
    echo "| command | dataset | wall s (median) | files/s by wall | CPU s (median) | files/s by CPU |"
    echo "| --- | --- | --- | --- | --- | --- |"

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

        local baseline baseline_threads baseline_sha256 verify fast init check b3
        local aide="aide --config=$WORK/$dataset-aide.conf"
        baseline=$(measure "$PALISADE integrity baseline $root -o $manifest")
        baseline_threads=$(measure "$PALISADE integrity baseline --threads $THREADS $root -o $manifest.threads")
        baseline_sha256=$(measure "$PALISADE integrity baseline --algorithm sha256 $root -o $manifest.sha256")
        verify=$(measure "$PALISADE integrity verify $manifest --format json")
        fast=$(measure "$PALISADE integrity verify --fast $manifest --format json")
        init=$(measure "$aide --init && mv $WORK/$dataset-aide.db.new $WORK/$dataset-aide.db")
        check=$(measure "$aide --check")
        b3=$(measure "find $root -type f -print0 | xargs -0 -n 5000 $B3SUM")

        row "palisade integrity baseline (blake3)" "$dataset" "$baseline" "$files"
        row "palisade integrity baseline --threads $THREADS (as many as AIDE's workers)" "$dataset" "$baseline_threads" "$files"
        row "palisade integrity baseline --algorithm sha256" "$dataset" "$baseline_sha256" "$files"
        row "palisade integrity verify" "$dataset" "$verify" "$files"
        row "palisade integrity verify --fast" "$dataset" "$fast" "$files"
        row "aide --init (sha256)" "$dataset" "$init" "$files"
        row "aide --check (sha256)" "$dataset" "$check" "$files"
        row "b3sum (one process per 5000 files)" "$dataset" "$b3" "$files"

        summary+=("$(printf '%s, %s files: baseline vs aide --init %.1fx faster by wall time, %.1fx by CPU time (goal >= 10x), %.1fx with --threads '"$THREADS"'; baseline wall time / b3sum %.2f (goal <= 1.5); sha256 baseline vs aide --init %.1fx; verify vs aide --check %.1fx; verify --fast %.0f files/s (goal >= 100000)' \
            "$dataset" "$files" "$(ratio "$init" "$baseline")" "$(cpu_ratio "$init" "$baseline")" "$(ratio "$init" "$baseline_threads")" "$(ratio "$baseline" "$b3")" \
            "$(ratio "$init" "$baseline_sha256")" "$(ratio "$check" "$verify")" "$(echo "$files / ${fast% *}" | bc -l)")")
    done
    echo
    printf '%s\n' "${summary[@]}"
}

main "$@"

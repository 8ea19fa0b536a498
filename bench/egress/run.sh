#!/usr/bin/env bash
# Benchmarks palisade-sidecar's egress proxy against squid and tinyproxy on loopback.
#
# All three proxies get the same backend (egress-loadgen serve on 127.0.0.2) and the same load
# tool (egress-loadgen). They also get the same allow-list at each of RULE_COUNTS sizes: N-1 host
# names that never match, then the backend's address, so the matching entry is last.
# Each proxy is pinned to PROXY_CPU and the load tool and backend to LOAD_CPU.
#
# Reported per proxy and rule count: requests/s with CONNECTIONS keep-alive connections
# sending as fast as responses arrive, and the proxy's CPU time per request in that run; p50
# and p99 latency at a fixed RATE requests/s, and the same minus a direct connection to the
# backend; p50 and p99 of one connection sending requests one after another, minus direct;
# peak RSS. Then, with one rule, RSS while TUNNELS idle CONNECT tunnels are open.
#
# Usage: bench/egress/run.sh   (as root, for apt-get; results in $WORK/results.md)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
WORK="${WORK:-/var/tmp/palisade-bench-egress}"
RULE_COUNTS="${RULE_COUNTS:-1 100 10000}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
CONNECTIONS="${CONNECTIONS:-50}"
RATE="${RATE:-1000}"
# Each tunnel costs the proxy two file descriptors, so fewer tunnels open when the hard limit
# on open files is below about 20,200. The 200 spare descriptors are for squid, which reserves
# some for itself and stalls when tunnels take them.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
max_tunnels=$(( ($(ulimit -n) - 200) / 2 ))
TUNNELS="${TUNNELS:-$(( max_tunnels < 10000 ? max_tunnels : 10000 ))}"
PROXY_CPU="${PROXY_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
BACKEND="127.0.0.2:18080"
PALISADE_PORT=3128
SQUID_PORT=3129
TINYPROXY_PORT=3130

mkdir -p "$WORK"
chmod 777 "$WORK"

# 1. Tools: squid and tinyproxy from Debian, the two Rust binaries built here.
if ! command -v squid >/dev/null || ! command -v tinyproxy >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq squid tinyproxy >/dev/null
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/palisade-target-bench}"
cargo build --release -q -p palisade-sidecar --manifest-path "$root/Cargo.toml"
cargo build --release -q --manifest-path "$here/loadgen/Cargo.toml"
sidecar="$CARGO_TARGET_DIR/release/palisade-sidecar"
loadgen="$CARGO_TARGET_DIR/release/egress-loadgen"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Prints the CPU time (user + system) a process used so far, in clock ticks.
cpu_ticks_of() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Prints "VmHWM VmRSS" of a process in kB.
memory_of() {
    awk '/^VmHWM/ {hwm=$2} /^VmRSS/ {rss=$2} END {print hwm, rss}' "/proc/$1/status"
}

# 2. Configuration for one allow-list size.
write_configs() {
    local rules="$1" hosts="$WORK/hosts-$1.txt"
    : >"$hosts"
    for i in $(seq 1 $((rules - 1))); do echo "host-$i.bench.example" >>"$hosts"; done

    {
        printf 'apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  egress:\n    allow:\n'
        while read -r host; do printf '      - hosts: [%s]\n' "$host"; done <"$hosts"
        printf '      - id: backend\n        cidrs: [127.0.0.2/32]\n        ports: [18080]\n'
    } >"$WORK/palisade-$rules.yaml"

    cat >"$WORK/squid-$rules.conf" <<SQUID
http_port 127.0.0.1:$SQUID_PORT
acl bench_hosts dstdomain -n "$hosts"
acl bench_backend dst 127.0.0.2/32
acl bench_port port 18080
acl CONNECT method CONNECT
http_access allow bench_hosts
http_access allow bench_backend bench_port
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $WORK/squid-cache.log
pid_filename $WORK/squid.pid
coredump_dir $WORK
max_filedescriptors 65536
workers 1
via off
shutdown_lifetime 0 seconds
SQUID

    { cat "$hosts"; echo "127.0.0.2"; } >"$WORK/tinyproxy-filter-$rules.txt"
    cat >"$WORK/tinyproxy-$rules.conf" <<TINYPROXY
User nobody
Group nogroup
Port $TINYPROXY_PORT
Listen 127.0.0.1
Timeout 600
MaxClients 12000
Allow 127.0.0.1
Filter "$WORK/tinyproxy-filter-$rules.txt"
FilterType fnmatch
FilterDefaultDeny Yes
FilterURLs Off
ConnectPort 18080
DisableViaHeader Yes
LogLevel Critical
PidFile "$WORK/tinyproxy.pid"
TINYPROXY
}

# Starts one proxy pinned to PROXY_CPU; sets $proxy_pid and $proxy_port.
start_proxy() {
    local name="$1" rules="$2"
    case "$name" in
        palisade)
            taskset -c "$PROXY_CPU" "$sidecar" proxy --policy "$WORK/palisade-$rules.yaml" \
                --listen "127.0.0.1:$PALISADE_PORT" --threads 1 --max-connections 20000 \
                --idle-timeout 600s 2>/dev/null &
            proxy_port=$PALISADE_PORT ;;
        squid)
            taskset -c "$PROXY_CPU" squid -N -f "$WORK/squid-$rules.conf" 2>>"$WORK/squid-stderr.log" &
            proxy_port=$SQUID_PORT ;;
        tinyproxy)
            taskset -c "$PROXY_CPU" tinyproxy -d -c "$WORK/tinyproxy-$rules.conf" 2>>"$WORK/tinyproxy-stderr.log" &
            proxy_port=$TINYPROXY_PORT ;;
    esac
    proxy_pid=$!
    wait_for_port "$proxy_port"
}

stop_proxy() {
    kill "$proxy_pid" 2>/dev/null || true
    wait "$proxy_pid" 2>/dev/null || true
    sleep 0.5
}

load() {
    taskset -c "$LOAD_CPU" "$loadgen" load "$BACKEND" "$@"
}

# 3. The backend and the direct baseline.
taskset -c "$LOAD_CPU" "$loadgen" serve "$BACKEND" &
pids+=($!)
sleep 0.3
results="$WORK/results.jsonl"
: >"$results"
direct_throughput=$(load --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN")
direct_latency=$(load --connections 20 --rate "$RATE" --seconds "$SECONDS_PER_RUN")
direct_sequential=$(load --connections 1 --seconds "$SECONDS_PER_RUN")
echo "{\"proxy\":\"direct\",\"rules\":0,\"throughput\":$direct_throughput,\"latency\":$direct_latency,\"sequential\":$direct_sequential}" | tee -a "$results"

# 4. Each proxy at each allow-list size.
for rules in $RULE_COUNTS; do
    write_configs "$rules"
    for name in palisade squid tinyproxy; do
        start_proxy "$name" "$rules"
        ticks_before=$(cpu_ticks_of "$proxy_pid")
        throughput=$(load --proxy "127.0.0.1:$proxy_port" --connections "$CONNECTIONS" --seconds "$SECONDS_PER_RUN")
        ticks_after=$(cpu_ticks_of "$proxy_pid")
        latency=$(load --proxy "127.0.0.1:$proxy_port" --connections 20 --rate "$RATE" --seconds "$SECONDS_PER_RUN")
        sequential=$(load --proxy "127.0.0.1:$proxy_port" --connections 1 --seconds "$SECONDS_PER_RUN")
        read -r hwm rss < <(memory_of "$proxy_pid")
        stop_proxy
        echo "{\"proxy\":\"$name\",\"rules\":$rules,\"throughput\":$throughput,\"latency\":$latency,\"sequential\":$sequential,\"hwm_kb\":$hwm,\"rss_kb\":$rss,\"cpu_ticks\":$((ticks_after - ticks_before)),\"ticks_per_second\":$(getconf CLK_TCK)}" | tee -a "$results"
    done
done

# 5. Idle CONNECT tunnels, one rule.
write_configs 1
for name in palisade squid tinyproxy; do
    start_proxy "$name" 1
    read -r _ idle_rss < <(memory_of "$proxy_pid")
    taskset -c "$LOAD_CPU" "$loadgen" tunnels "$BACKEND" --proxy "127.0.0.1:$proxy_port" --count "$TUNNELS" --seconds 8 >"$WORK/tunnels.json" &
    tunnels_pid=$!
    # Sample while the tunnels are held open.
    for _ in $(seq 1 240); do
        [ -s "$WORK/tunnels.json" ] && break
        sleep 0.25
    done
    sleep 2
    read -r _ rss < <(memory_of "$proxy_pid")
    wait "$tunnels_pid" || true
    stop_proxy
    echo "{\"proxy\":\"$name\",\"tunnels\":$(cat "$WORK/tunnels.json" || echo null),\"idle_rss_kb\":$idle_rss,\"tunnels_rss_kb\":$rss}" | tee -a "$results"
done

# 6. The summary table.
python3 "$here/report.py" "$results" | tee "$WORK/results.md"

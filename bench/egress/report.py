"""Turns the benchmark's JSON lines into the Markdown tables of docs/benchmarks.md."""

import json
import sys


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    direct = next(row for row in rows if row["proxy"] == "direct")
    base50 = direct["latency"]["p50_us"]
    base99 = direct["latency"]["p99_us"]
    print(f"Direct: {direct['throughput']['rps']:.0f} requests/s; at the fixed rate p50 {base50} µs, p99 {base99} µs.")
    print()
    print("| proxy | rules | requests/s | errors | p50 µs | p99 µs | added p50 µs | added p99 µs | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    squid = {}
    for row in rows:
        if "rules" not in row or row["proxy"] == "direct":
            continue
        throughput, latency = row["throughput"], row["latency"]
        if row["proxy"] == "squid":
            squid[row["rules"]] = throughput["rps"]
        print(
            f"| {row['proxy']} | {row['rules']} | {throughput['rps']:.0f} | {throughput['errors'] + latency['errors']} "
            f"| {latency['p50_us']} | {latency['p99_us']} | {latency['p50_us'] - base50} | {latency['p99_us'] - base99} "
            f"| {row['hwm_kb'] / 1024:.1f} |"
        )
    print()
    for row in rows:
        if row["proxy"] == "palisade" and "rules" in row and row["rules"] in squid and squid[row["rules"]]:
            print(f"palisade / squid requests/s at {row['rules']} rules: {row['throughput']['rps'] / squid[row['rules']]:.2f}×")
    print()
    print("| proxy | tunnels open | failed | RSS before MiB | RSS with tunnels MiB |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        if "tunnels" in row:
            tunnels = row["tunnels"] or {"open": 0, "failed": "?"}
            print(
                f"| {row['proxy']} | {tunnels['open']} | {tunnels['failed']} "
                f"| {row['idle_rss_kb'] / 1024:.1f} | {row['tunnels_rss_kb'] / 1024:.1f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1])

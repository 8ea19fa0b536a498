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
    print(
        "| proxy | rules | requests/s | CPU µs/request | errors | p50 µs | p99 µs | added p50 µs | added p99 µs "
        "| peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cpu = {}
    squid = {}
    for row in rows:
        if "rules" not in row or row["proxy"] == "direct":
            continue
        throughput, latency = row["throughput"], row["latency"]
        if row["proxy"] == "squid":
            squid[row["rules"]] = throughput["rps"]
        cpu_us = row["cpu_ticks"] / row["ticks_per_second"] * 1e6 / max(throughput["requests"], 1)
        cpu[(row["proxy"], row["rules"])] = cpu_us
        print(
            f"| {row['proxy']} | {row['rules']} | {throughput['rps']:.0f} | {cpu_us:.1f} "
            f"| {throughput['errors'] + latency['errors']} "
            f"| {latency['p50_us']} | {latency['p99_us']} | {latency['p50_us'] - base50} | {latency['p99_us'] - base99} "
            f"| {row['hwm_kb'] / 1024:.1f} |"
        )
    print()
    for row in rows:
        if row["proxy"] == "palisade" and "rules" in row and row["rules"] in squid and squid[row["rules"]]:
            rules = row["rules"]
            print(
                f"At {rules} rules: palisade / squid requests/s {row['throughput']['rps'] / squid[rules]:.2f}×, "
                f"squid / palisade CPU per request {cpu[('squid', rules)] / cpu[('palisade', rules)]:.2f}×"
            )
            print()
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

"""Turns the benchmark's JSON lines into the Markdown tables of docs/benchmarks.md."""

import json
import sys


def print_load_table(rows, direct):
    """Prints requests/s, CPU per request, fixed-rate latency and peak RSS per proxy and size."""
    base50 = direct["latency"]["p50_us"]
    base99 = direct["latency"]["p99_us"]
    print(f"Direct: {direct['throughput']['rps']:.0f} requests/s; at the fixed rate p50 {base50} µs, p99 {base99} µs.")
    print()
    print(
        "| proxy | rules | requests/s | CPU µs/request | errors | p50 µs | p99 µs | added p50 µs | added p99 µs "
        "| peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    for row in rows:
        throughput, latency = row["throughput"], row["latency"]
        print(
            f"| {row['proxy']} | {row['rules']} | {throughput['rps']:.0f} | {cpu_per_request(row):.1f} "
            f"| {throughput['errors'] + latency['errors']} "
            f"| {latency['p50_us']} | {latency['p99_us']} | {latency['p50_us'] - base50} | {latency['p99_us'] - base99} "
            f"| {row['hwm_kb'] / 1024:.1f} |"
        )
    print()


def print_sequential_table(rows, direct):
    """Prints the latency of one connection sending requests one after another."""
    sequential = direct["sequential"]
    print(
        f"One connection, requests one after another: direct p50 {sequential['p50_us']} µs, "
        f"p99 {sequential['p99_us']} µs."
    )
    print()
    print("| proxy | rules | p50 µs | p99 µs | added p50 µs | added p99 µs |")
    print("|---|---:|---:|---:|---:|---:|")

    for row in rows:
        one = row["sequential"]
        print(
            f"| {row['proxy']} | {row['rules']} | {one['p50_us']} | {one['p99_us']} "
            f"| {one['p50_us'] - sequential['p50_us']} | {one['p99_us'] - sequential['p99_us']} |"
        )
    print()


def print_ratios(rows):
    """Prints palisade's requests/s and CPU per request relative to squid's."""
    by_key = {(row["proxy"], row["rules"]): row for row in rows}
    for (proxy, rules), row in by_key.items():
        squid = by_key.get(("squid", rules))
        if proxy != "palisade" or squid is None:
            continue
        throughput_ratio = row["throughput"]["rps"] / squid["throughput"]["rps"]
        cpu_ratio = cpu_per_request(squid) / cpu_per_request(row)
        print(
            f"At {rules} rules: palisade / squid requests/s {throughput_ratio:.2f}×, "
            f"squid / palisade CPU per request {cpu_ratio:.2f}×"
        )
        print()


def print_tunnel_table(rows):
    """Prints RSS before and while the idle CONNECT tunnels are open, the RSS each tunnel adds,
    and the RSS that rate gives for 10,000 tunnels when fewer could be opened."""
    print("| proxy | tunnels open | failed | RSS before MiB | RSS with tunnels MiB | KiB per tunnel "
          "| RSS at 10,000 tunnels MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    for row in rows:
        tunnels = row["tunnels"] or {"open": 0, "failed": "?"}
        before, during = row["idle_rss_kb"], row["tunnels_rss_kb"]
        per_tunnel = (during - before) / tunnels["open"] if tunnels["open"] else float("nan")
        at_10000 = (before + per_tunnel * 10000) / 1024
        print(
            f"| {row['proxy']} | {tunnels['open']} | {tunnels['failed']} "
            f"| {before / 1024:.1f} | {during / 1024:.1f} | {per_tunnel:.2f} | {at_10000:.1f} |"
        )


def cpu_per_request(row):
    """Returns the proxy's CPU time per request in the throughput run, in microseconds."""
    seconds = row["cpu_ticks"] / row["ticks_per_second"]
    return seconds * 1e6 / max(row["throughput"]["requests"], 1)


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    direct = next(row for row in rows if row["proxy"] == "direct")
    proxied = [row for row in rows if "rules" in row and row["proxy"] != "direct"]
    tunnels = [row for row in rows if "tunnels" in row]

    print_load_table(proxied, direct)
    print_sequential_table(proxied, direct)
    print_ratios(proxied)
    print_tunnel_table(tunnels)


if __name__ == "__main__":
    main(sys.argv[1])

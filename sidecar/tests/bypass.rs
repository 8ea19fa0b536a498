//! A table of bypass attempts against the egress proxy, one row per case. Each row checks the
//! proxy's status code and that no forbidden backend received a connection. For cases that must
//! be decided without DNS, it also checks that the stub DNS server saw no query.
//!
//! The table runs inside a new network namespace that has only a loopback interface, so a proxy
//! that wrongly dialled 169.254.169.254 or 10.0.0.1 would reach nothing (and return 502, which
//! fails the row).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{policy, status_of, Backend, ProxyProcess, StubDns};

/// Marks the test process that runs inside the network namespace.
const NAMESPACE_VARIABLE: &str = "PALISADE_BYPASS_NETNS";

#[derive(Debug)]
struct Row {
    name: &'static str,
    request: String,
    status: u16,
    /// Whether the destination must be decided without a DNS query.
    no_lookup: bool,
    /// Whether the row goes to the proxy whose policy has `default: allow`, so that only the
    /// special-purpose and spelling checks are between the request and its destination.
    open: bool,
}

/// Sends `request` and returns the response head (up to the blank line, or what arrived
/// before the connection closed).
fn response_head(proxy: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => received.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn get(authority: &str) -> String {
    format!("GET http://{authority}/ HTTP/1.1\r\nConnection: close\r\n\r\n")
}

fn connect(authority: &str) -> String {
    format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n")
}

fn row(name: &'static str, request: String, status: u16, no_lookup: bool) -> Row {
    Row { name, request, status, no_lookup, open: false }
}

fn open_row(name: &'static str, request: String, status: u16, no_lookup: bool) -> Row {
    Row { name, request, status, no_lookup, open: true }
}

fn rows(forbidden: u16, allowed: u16, named: u16) -> Vec<Row> {
    let f = forbidden;
    let a = allowed;
    let n = named;
    let backend = format!("127.0.0.2:{a}");
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    vec![
        // Special-purpose addresses.
        open_row("loopback 127.0.0.1", get(&format!("127.0.0.1:{f}")), 403, true),
        open_row("loopback 127.0.0.3", get(&format!("127.0.0.3:{f}")), 403, true),
        open_row("loopback connect", connect(&format!("127.0.0.1:{f}")), 403, true),
        open_row("loopback ipv6", get(&format!("[::1]:{f}")), 403, true),
        open_row("loopback trailing dot", get(&format!("127.0.0.1.:{f}")), 403, true),
        open_row("unspecified ipv4", get(&format!("0.0.0.0:{f}")), 403, true),
        open_row("unspecified ipv6", get(&format!("[::]:{f}")), 403, true),
        open_row("this network", get(&format!("0.1.2.3:{f}")), 403, true),
        open_row("rfc1918 10/8", get(&format!("10.0.0.1:{f}")), 403, true),
        open_row("rfc1918 172.16/12", get(&format!("172.16.0.1:{f}")), 403, true),
        open_row("rfc1918 192.168/16", connect(&format!("192.168.0.1:{f}")), 403, true),
        open_row("link-local metadata", get("169.254.169.254:80"), 403, true),
        open_row("link-local metadata connect", connect("169.254.169.254:80"), 403, true),
        open_row("link-local ipv6", get(&format!("[fe80::1]:{f}")), 403, true),
        open_row("ec2 metadata ipv6", get("[fd00:ec2::254]:80"), 403, true),
        open_row("unique-local", get(&format!("[fc00::1]:{f}")), 403, true),
        open_row("cgnat", get(&format!("100.64.0.1:{f}")), 403, true),
        open_row("multicast ipv4", get(&format!("224.0.0.1:{f}")), 403, true),
        open_row("multicast ipv6", get(&format!("[ff02::1]:{f}")), 403, true),
        open_row("benchmarking", get(&format!("198.18.0.1:{f}")), 403, true),
        open_row("reserved 240/4", get(&format!("240.0.0.1:{f}")), 403, true),
        open_row("broadcast", get(&format!("255.255.255.255:{f}")), 403, true),
        // IPv6 forms carrying an IPv4 address.
        open_row("ipv4-mapped loopback", get(&format!("[::ffff:127.0.0.1]:{f}")), 403, true),
        open_row("ipv4-mapped metadata", get("[::ffff:169.254.169.254]:80"), 403, true),
        open_row("ipv4-compatible", get(&format!("[::127.0.0.1]:{f}")), 403, true),
        open_row("ipv4-translated", get(&format!("[::ffff:0:7f00:1]:{f}")), 403, true),
        open_row("nat64 loopback", get(&format!("[64:ff9b::7f00:1]:{f}")), 403, true),
        open_row("nat64 metadata", get("[64:ff9b::a9fe:a9fe]:80"), 403, true),
        open_row("6to4 loopback", get(&format!("[2002:7f00:1::1]:{f}")), 403, true),
        open_row("6to4 metadata", get("[2002:a9fe:a9fe::1]:80"), 403, true),
        open_row("teredo server", get(&format!("[2001:0:7f00:1::ffff:ffff]:{f}")), 403, true),
        open_row("teredo client", get(&format!("[2001:0:4136:e378:8000:63bf:f5ff:fffe]:{f}")), 403, true),
        // Non-canonical IPv4 spellings never reach a resolver.
        open_row("short 127.1", get(&format!("127.1:{f}")), 400, true),
        open_row("short 127.0.1", get(&format!("127.0.1:{f}")), 400, true),
        open_row("hex parts", get(&format!("0x7f.0.0.1:{f}")), 400, true),
        open_row("hex integer", get(&format!("0x7f000001:{f}")), 400, true),
        open_row("decimal integer", get(&format!("2130706433:{f}")), 400, true),
        open_row("octal", get(&format!("0177.0.0.1:{f}")), 400, true),
        open_row("leading zero", get(&format!("127.0.0.01:{f}")), 400, true),
        open_row("octal integer", get(&format!("017700000001:{f}")), 400, true),
        open_row("mixed hex", get(&format!("127.0x0.0.1:{f}")), 400, true),
        open_row("connect short", connect(&format!("127.1:{f}")), 400, true),
        // Names, resolved by the stub server.
        row("allowed name", get(&format!("api.test:{n}")), 200, false),
        row("name case and dot", get(&format!("API.Test.:{n}")), 200, false),
        row("punycode name", get(&format!("xn--bcher-kva.test:{n}")), 200, false),
        row("name to loopback", get(&format!("loop.wild.test:{f}")), 403, false),
        row("name to metadata", get("meta.wild.test:80"), 403, false),
        row("name to mapped ipv6", get(&format!("mapped.wild.test:{f}")), 403, false),
        row("wildcard apex", get(&format!("wild.test:{n}")), 403, true),
        row("label boundary", get(&format!("xwild.test:{n}")), 403, true),
        row("suffix trick", get(&format!("wild.test.evil.test:{n}")), 403, true),
        row("deny rule wins", get(&format!("blocked.wild.test:{n}")), 403, true),
        row("empty label", get(&format!("a..b.test:{n}")), 400, true),
        row("leading hyphen", get(&format!("-a.test:{n}")), 400, true),
        row("percent in host", get(&format!("exa%6dple.test:{n}")), 400, true),
        // Request framing and targets.
        row(
            "length and chunked",
            format!("POST http://{backend}/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
            true,
        ),
        row(
            "chunked and length",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n{smuggled}"),
            400,
            true,
        ),
        row(
            "differing lengths",
            format!("POST http://{backend}/ HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n{smuggled}"),
            400,
            true,
        ),
        row(
            "two transfer-encodings",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            400,
            true,
        ),
        row(
            "unknown coding",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            400,
            true,
        ),
        row(
            "invalid chunk size",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{smuggled}"),
            400,
            false,
        ),
        row(
            "chunk size overflow",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\n{smuggled}"),
            400,
            false,
        ),
        row(
            "bare lf in chunk",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
            400,
            false,
        ),
        row(
            "chunk longer than size",
            format!("POST http://{backend}/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc\r\n0\r\n\r\n"),
            400,
            false,
        ),
        row(
            "host mismatch",
            format!("GET http://{backend}/ HTTP/1.1\r\nHost: 127.0.0.1:{f}\r\nConnection: close\r\n\r\n"),
            400,
            true,
        ),
        row(
            "two host headers",
            format!("GET http://{backend}/ HTTP/1.1\r\nHost: {backend}\r\nHost: 127.0.0.1:{f}\r\n\r\n"),
            400,
            true,
        ),
        row("obsolete line folding", format!("GET http://{backend}/ HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), 400, true),
        row("connect port zero", connect("127.0.0.2:0"), 400, true),
        row("connect port too large", connect("127.0.0.2:65536"), 400, true),
        row("connect port missing", connect("127.0.0.2"), 400, true),
        row("connect port signed", connect("127.0.0.2:+80"), 400, true),
        row("origin form", "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_owned(), 400, true),
        row("userinfo", get(&format!("{backend}@127.0.0.1:{f}")), 400, true),
        row("https absolute", format!("GET https://127.0.0.1:{f}/ HTTP/1.1\r\n\r\n"), 400, true),
        row("http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_owned(), 400, true),
        row(
            "redirect returned",
            format!("GET http://{backend}/redirect?to=http://127.0.0.1:{f}/ HTTP/1.1\r\nConnection: close\r\n\r\n"),
            302,
            true,
        ),
    ]
}

#[test]
fn bypass_table() {
    if std::env::var_os(NAMESPACE_VARIABLE).is_none() {
        let status = Command::new("unshare")
            .args(["--net", "--map-root-user", "--"])
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", "bypass_table", "--nocapture", "--test-threads=1"])
            .env(NAMESPACE_VARIABLE, "1")
            .status()
            .expect("unshare (util-linux) is needed to run the bypass table in its own network namespace");
        assert!(status.success(), "the bypass table failed inside its network namespace; see the output above");
        return;
    }

    let loopback = Command::new("ip").args(["link", "set", "lo", "up"]).status();
    assert!(loopback.is_ok_and(|status| status.success()), "failed to bring up lo: install iproute2");

    let allowed = Backend::start("127.0.0.2");
    let named = Backend::start("127.0.0.4");
    let forbidden_v4 = Backend::start("127.0.0.1");
    let port = forbidden_v4.address.port();
    let forbidden = [
        forbidden_v4,
        Backend::start_at(format!("127.0.0.3:{port}").parse().unwrap()),
        Backend::start_at(format!("[::1]:{port}").parse().unwrap()),
    ];

    let dns = StubDns::start();
    for name in ["api.test", "xn--bcher-kva.test"] {
        dns.set(name, &[&["127.0.0.4"]]);
    }
    dns.set("loop.wild.test", &[&["127.0.0.1"]]);
    dns.set("meta.wild.test", &[&["169.254.169.254"]]);
    dns.set("mapped.wild.test", &[&["::ffff:127.0.0.1"]]);
    for name in ["wild.test", "xwild.test", "wild.test.evil.test", "blocked.wild.test"] {
        dns.set(name, &[&["127.0.0.2"]]);
    }

    // The backend rule opens one port of 127.0.0.2; the lab rule only names 127.0.0.4 (port 1),
    // so host rules can reach it and names on other ports are decided without a lookup.
    let rules = format!(
        "    allow:
      - id: backend
        cidrs: [127.0.0.2/32]
        ports: [{}]
      - id: lab
        cidrs: [127.0.0.4/32]
        ports: [1]
      - id: api
        hosts: [api.test, '*.wild.test', bücher.test]
    deny:
      - id: blocked
        hosts: [blocked.wild.test]
",
        allowed.address.port()
    );
    let proxy = ProxyProcess::start(&policy(&rules), Some(&dns), &[]);
    let open_proxy = ProxyProcess::start(&policy("    default: allow\n"), Some(&dns), &[]);

    let mut failures = Vec::new();
    for row in rows(port, allowed.address.port(), named.address.port()) {
        let queries_before = dns.queries().len();

        let target = if row.open { &open_proxy } else { &proxy };
        let head = response_head(target.address, row.request.as_bytes());

        let status = status_of(&head);
        if status != row.status {
            failures.push(format!("{}: status {status}, expected {}: {head:?}", row.name, row.status));
        }
        for backend in &forbidden {
            if backend.connections() != 0 {
                failures.push(format!("{}: the forbidden backend {} received a connection", row.name, backend.address));
            }
        }
        if row.no_lookup && dns.queries().len() != queries_before {
            failures.push(format!("{}: the resolver was queried: {:?}", row.name, &dns.queries()[queries_before..]));
        }
        if allowed.requests().iter().any(|request| request.contains("smuggled")) {
            failures.push(format!("{}: a smuggled request reached the backend", row.name));
        }
    }

    assert!(
        failures.is_empty(),
        "{} checks failed:\n{}\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        proxy.log(),
        open_proxy.log()
    );
}

//! End-to-end tests of `palisade-sidecar proxy` with real clients (curl, Python `requests`)
//! and backends on loopback addresses.
//!
//! Loopback is special-purpose, so each policy admits its backends through explicit CIDR rules
//! such as 127.0.0.2/32; the other loopback addresses stay denied.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, policy, python_requests, raw_request, status_of, Backend, ProxyProcess, StubDns};

const BACKEND_RULE: &str = "    allow:
      - id: backend
        cidrs: [127.0.0.2/32]
";

#[test]
fn curl_forward_request_allowed() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);

    let (status, body) = curl(&["-x", &proxy.url(), &backend.url("/hello")]);

    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("backend {} /hello", backend.address));
    let events = proxy.wait_for_decisions(1);
    let attributes = &events[0]["attributes"];
    assert_eq!(attributes["palisade.decision"], "allow");
    assert_eq!(attributes["palisade.rule.id"], "backend");
    assert_eq!(attributes["server.address"], "127.0.0.2");
    assert_eq!(attributes["server.port"], backend.address.port());
    assert_eq!(attributes["network.peer.address"], "127.0.0.2");
    assert_eq!(attributes["palisade.bytes.received"], body.len());
    assert!(attributes["palisade.policy.hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(attributes["palisade.duration_ms"].as_f64().is_some());
}

#[test]
fn curl_connect_tunnel_allowed() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);

    let (status, body) = curl(&["--proxytunnel", "-x", &proxy.url(), &backend.url("/tunnel")]);

    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("backend {} /tunnel", backend.address));
    let events = proxy.wait_for_decisions(1);
    let attributes = &events[0]["attributes"];
    assert_eq!(attributes["http.request.method"], "CONNECT");
    assert!(attributes["palisade.bytes.sent"].as_u64().unwrap() > 0);
    assert!(attributes["palisade.bytes.received"].as_u64().unwrap() > body.len() as u64);
}

#[test]
fn curl_other_loopback_denied() {
    let allowed = Backend::start("127.0.0.2");
    let forbidden = Backend::start("127.0.0.3");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);

    let (forward_status, _) = curl(&["-x", &proxy.url(), &forbidden.url("/")]);
    let (tunnel_status, _) = curl(&["--proxytunnel", "-x", &proxy.url(), &forbidden.url("/")]);

    assert_eq!(forward_status, 403);
    // curl reports a refused tunnel as status 000 once it gives up on the CONNECT.
    assert!(tunnel_status == 403 || tunnel_status == 0, "status {tunnel_status}");
    assert_eq!(forbidden.connections(), 0);
    assert_eq!(allowed.connections(), 0);
    let events = proxy.wait_for_decisions(2);
    assert_eq!(events[0]["attributes"]["palisade.decision"], "deny");
    assert_eq!(events[0]["attributes"]["palisade.reason"], "loopback");
}

#[test]
fn python_requests_http_proxy() {
    let backend = Backend::start("127.0.0.2");
    let forbidden = Backend::start("127.0.0.3");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);

    let (status, body) = python_requests(&proxy.url(), &backend.url("/py"));
    let (denied_status, _) = python_requests(&proxy.url(), &forbidden.url("/py"));

    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("backend {} /py", backend.address));
    assert_eq!(denied_status, 403);
    assert_eq!(forbidden.connections(), 0);
}

/// A TLS server on 127.0.0.2 with a self-signed certificate, run by Python's `ssl` module.
struct TlsBackend {
    child: Child,
    port: u16,
    _directory: tempfile::TempDir,
}

impl TlsBackend {
    fn start() -> Self {
        let directory = tempfile::tempdir().unwrap();
        let key = directory.path().join("key.pem");
        let certificate = directory.path().join("cert.pem");
        let status = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.2", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&certificate)
            .stderr(Stdio::null())
            .status()
            .expect("openssl is needed to make the TLS test certificate: install it (apt-get install openssl)");
        assert!(status.success(), "openssl failed to make a certificate");

        let script = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"tls backend " + self.path.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *arguments):
        pass
server = http.server.HTTPServer(("127.0.0.2", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(&certificate)
            .arg(&key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for the TLS backend");
        let mut line = String::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the TLS backend did not start: {line:?}"));
        Self { child, port, _directory: directory }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_requests_https_proxy_tunnel() {
    let backend = TlsBackend::start();
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);

    let (status, body) = python_requests(&proxy.url(), &format!("https://127.0.0.2:{}/secure", backend.port));
    let (denied_status, _) = python_requests(&proxy.url(), &format!("https://127.0.0.1:{}/secure", backend.port));

    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "tls backend /secure");
    assert_eq!(denied_status, 0, "a refused tunnel is a proxy error for requests");
    let events = proxy.wait_for_decisions(2);
    assert!(events.iter().any(|event| event["attributes"]["palisade.reason"] == "loopback"));
}

#[test]
fn name_resolved_through_stub_dns() {
    let backend = Backend::start("127.0.0.2");
    let dns = StubDns::start();
    dns.set("api.test", &[&["127.0.0.2"]]);
    let rules = "    allow:
      - id: api
        hosts: [api.test]
      - id: loopback-lab
        cidrs: [127.0.0.2/32]
        ports: [1]
";
    let proxy = ProxyProcess::start(&policy(rules), Some(&dns), &[]);
    let url = format!("http://API.test.:{}/named", backend.address.port());

    let (status, body) = curl(&["-x", &proxy.url(), &url]);
    let (direct_status, _) = curl(&["-x", &proxy.url(), &backend.url("/direct")]);

    assert_eq!(status, 200, "{body}");
    assert_eq!(proxy.wait_for_decisions(1)[0]["attributes"]["palisade.rule.id"], "api");
    // The CIDR rule only names 127.0.0.2 for port 1, so the address alone is not allowed.
    assert_eq!(direct_status, 403);
    assert_eq!(backend.requests(), vec!["GET /named HTTP/1.1".to_owned()]);
}

#[test]
fn dns_rebinding_to_loopback_denied() {
    let allowed = Backend::start("127.0.0.2");
    let forbidden = Backend::start_at(format!("127.0.0.1:{}", allowed.address.port()).parse().unwrap());
    let dns = StubDns::start();
    dns.set("rebind.test", &[&["127.0.0.2"], &["127.0.0.1"]]);
    let rules = "    allow:
      - id: rebind
        hosts: [rebind.test]
      - cidrs: [127.0.0.2/32]
";
    let proxy = ProxyProcess::start(&policy(rules), Some(&dns), &[]);
    let url = format!("http://rebind.test:{}/", allowed.address.port());

    let (first, _) = curl(&["-x", &proxy.url(), &url]);
    let (second, _) = curl(&["-x", &proxy.url(), &url]);
    let (tunnel, _) = curl(&["--proxytunnel", "-x", &proxy.url(), &url]);

    assert_eq!(first, 200);
    assert_eq!(second, 403);
    assert!(tunnel == 403 || tunnel == 0, "status {tunnel}");
    assert_eq!(allowed.connections(), 1);
    assert_eq!(forbidden.connections(), 0);
    let lookups = dns.queries().iter().filter(|name| *name == "rebind.test").count();
    assert!(lookups >= 3, "{lookups} lookups of rebind.test, one per request expected");
}

#[test]
fn mixed_answers_dial_allowed_only() {
    let allowed = Backend::start("127.0.0.2");
    let forbidden = Backend::start_at(format!("127.0.0.1:{}", allowed.address.port()).parse().unwrap());
    let dns = StubDns::start();
    dns.set("mixed.test", &[&["127.0.0.1", "127.0.0.2"]]);
    let rules = "    allow:
      - hosts: [mixed.test]
      - cidrs: [127.0.0.2/32]
";
    let proxy = ProxyProcess::start(&policy(rules), Some(&dns), &[]);

    for _ in 0..3 {
        let (status, _) = curl(&["-x", &proxy.url(), &format!("http://mixed.test:{}/", allowed.address.port())]);
        assert_eq!(status, 200);
    }

    assert_eq!(forbidden.connections(), 0);
    assert_eq!(allowed.requests().len(), 3);
}

#[test]
fn denied_name_never_queried() {
    let dns = StubDns::start();
    dns.set("other.test", &[&["127.0.0.2"]]);
    let proxy = ProxyProcess::start(&policy("    allow:\n      - hosts: [api.test]\n"), Some(&dns), &[]);

    let (status, _) = curl(&["-x", &proxy.url(), "http://other.test:8080/"]);

    assert_eq!(status, 403);
    assert!(dns.queries().is_empty(), "queries: {:?}", dns.queries());
}

#[test]
fn audit_mode_lets_denied_through() {
    let backend = Backend::start("127.0.0.3");
    let rules = format!("  mode: audit\n{}", policy(BACKEND_RULE).split_once("spec:\n").unwrap().1);
    let text = format!("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n{rules}");
    let proxy = ProxyProcess::start(&text, None, &[]);

    let (status, _) = curl(&["-x", &proxy.url(), &backend.url("/audited")]);

    assert_eq!(status, 200);
    assert_eq!(backend.requests().len(), 1);
    let attributes = &proxy.wait_for_decisions(1)[0]["attributes"];
    assert_eq!(attributes["palisade.decision"], "deny");
    assert_eq!(attributes["palisade.egress.audited"], true);
    assert_eq!(attributes["palisade.policy.mode"], "audit");
}

#[test]
fn redirect_returned_not_followed() {
    let backend = Backend::start("127.0.0.2");
    let forbidden = Backend::start("127.0.0.3");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);
    let url = backend.url(&format!("/redirect?to={}", forbidden.url("/")));

    let (status, _) = curl(&["-x", &proxy.url(), &url]);
    let (python_status, _) = python_requests(&proxy.url(), &url);

    assert_eq!(status, 302);
    assert_eq!(python_status, 302);
    assert_eq!(forbidden.connections(), 0);
}

#[test]
fn proxy_never_dials_itself() {
    let proxy = ProxyProcess::start(&policy("    allow:\n      - cidrs: [127.0.0.0/8]\n"), None, &[]);
    let own = proxy.address;

    let connect = raw_request(own, format!("CONNECT {own} HTTP/1.1\r\nHost: {own}\r\n\r\n").as_bytes());
    let forward = raw_request(own, format!("GET http://{own}/ HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes());

    assert_eq!(status_of(&connect), 403, "{connect}");
    assert_eq!(status_of(&forward), 403, "{forward}");
    let events = proxy.wait_for_decisions(2);
    assert_eq!(events[0]["attributes"]["palisade.reason"], "proxy-itself");
}

#[test]
fn reload_on_sighup_and_file_change() {
    let backend = Backend::start("127.0.0.2");
    let mut proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);
    let fetch = |proxy: &ProxyProcess| curl(&["-x", &proxy.url(), &backend.url("/")]).0;
    assert_eq!(fetch(&proxy), 200);

    // An invalid policy keeps the one in force.
    std::fs::write(
        &proxy.policy_path,
        "apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  egress:\n    allow: [{}]\n",
    )
    .unwrap();
    proxy.sighup();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fetch(&proxy), 200);
    assert!(proxy.log().contains("invalid policy file"), "{}", proxy.log());

    // A valid change is noticed without a signal.
    std::fs::write(&proxy.policy_path, policy("    allow: []\n")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fetch(&proxy) != 403 {
        assert!(Instant::now() < deadline, "the changed policy was not applied: {}", proxy.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGHUP applies a rewrite at once.
    std::fs::write(&proxy.policy_path, policy(BACKEND_RULE)).unwrap();
    proxy.sighup();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fetch(&proxy), 200);
    assert!(proxy.is_running());
}

#[test]
fn connection_limit_answers_503() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &["--max-connections", "2"]);

    // The start-up probe may still hold a slot for a moment, so an idle client that is turned
    // away (it reads 503 at once) is replaced until two hold a slot.
    let mut idle = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while idle.len() < 2 {
        assert!(Instant::now() < deadline, "two idle clients could not get a connection slot");
        let mut stream = TcpStream::connect(proxy.address).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).is_err() {
            idle.push(stream);
        }
    }
    let over = raw_request(proxy.address, b"");
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = 0;
    while after != 200 && Instant::now() < deadline {
        after = curl(&["-x", &proxy.url(), &backend.url("/")]).0;
    }

    assert_eq!(status_of(&over), 503, "{over}");
    assert_eq!(after, 200, "the proxy did not serve again after the idle clients left");
}

#[test]
fn decisions_and_rejections_counted() {
    let backend = Backend::start("127.0.0.2");
    let mut proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &[]);
    for _ in 0..2 {
        assert_eq!(curl(&["-x", &proxy.url(), &backend.url("/")]).0, 200);
    }
    assert_eq!(curl(&["-x", &proxy.url(), "http://127.0.0.1:9/"]).0, 403);
    let bad = raw_request(proxy.address, b"GET /origin-form HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&bad), 400, "{bad}");

    let counters = proxy.terminate_and_read_counters();

    let value = |name: &str, key: &str, wanted: &str| {
        counters
            .iter()
            .find(|(counter, attributes, _)| counter == name && attributes[key] == wanted)
            .map(|entry| entry.2)
    };
    assert_eq!(value("palisade.egress.decisions", "palisade.decision", "allow"), Some(2));
    assert_eq!(value("palisade.egress.decisions", "palisade.decision", "deny"), Some(1));
    assert_eq!(value("palisade.egress.rejected", "palisade.reason", "bad-request"), Some(1));
}

#[test]
fn idle_tunnel_closed_after_timeout() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &["--tunnel-idle-timeout", "1s"]);
    let mut tunnel = TcpStream::connect(proxy.address).unwrap();
    write!(tunnel, "CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", backend.address).unwrap();

    let started = Instant::now();
    tunnel.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut received = String::new();
    let _ = tunnel.read_to_string(&mut received);
    let open_for = started.elapsed();

    assert_eq!(status_of(&received), 200, "{received}");
    assert!(open_for >= Duration::from_millis(900), "closed after {open_for:?}");
    assert!(open_for < Duration::from_secs(5), "still open after {open_for:?}");
    let events = proxy.wait_for_decisions(1);
    assert_eq!(events[0]["attributes"]["error.type"], "tunnel_idle_timeout");
}

#[test]
fn oversized_head_answers_431() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &["--max-header-bytes", "1024"]);
    let request = format!("GET {} HTTP/1.1\r\nX-Padding: {}\r\n\r\n", backend.url("/"), "a".repeat(2048));

    let response = raw_request(proxy.address, request.as_bytes());

    assert_eq!(status_of(&response), 431, "{response}");
    assert_eq!(backend.connections(), 0);
}

#[test]
fn slow_head_times_out_without_stalling_others() {
    let backend = Backend::start("127.0.0.2");
    let proxy = ProxyProcess::start(&policy(BACKEND_RULE), None, &["--header-timeout", "1s"]);
    let mut slow = TcpStream::connect(proxy.address).unwrap();
    slow.write_all(b"GET http://127.0.0.2/ HTTP/1.1\r\nX-Slow: ").unwrap();

    let started = Instant::now();
    let (status, _) = curl(&["-x", &proxy.url(), &backend.url("/")]);
    let served_in = started.elapsed();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);

    assert_eq!(status, 200);
    assert!(served_in < Duration::from_millis(900), "served in {served_in:?}");
    assert_eq!(status_of(&answer), 408, "{answer}");
}

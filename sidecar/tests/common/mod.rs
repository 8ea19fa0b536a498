//! Test harness: loopback backends that record what reaches them, a stub DNS server, the proxy
//! binary, and raw, curl and Python `requests` clients.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA};
use hickory_resolver::proto::rr::{RData, Record, RecordType};

/// An HTTP/1.1 server on a loopback address that records every connection and request line.
///
/// `GET /redirect?to=URL` gets 302 with `Location: URL`, and every other request gets 200 with
/// the body `backend ADDRESS PATH`.
#[derive(Debug, Clone)]
pub struct Backend {
    pub address: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Backend {
    /// Starts a backend on `ip` with a free port.
    pub fn start(ip: &str) -> Self {
        Self::start_at(SocketAddr::new(ip.parse().unwrap(), 0))
    }

    pub fn start_at(address: SocketAddr) -> Self {
        let listener =
            TcpListener::bind(address).unwrap_or_else(|error| panic!("failed to bind a backend on {address}: {error}"));
        let backend =
            Self { address: listener.local_addr().unwrap(), connections: Arc::default(), requests: Arc::default() };
        let shared = backend.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        backend
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" || line == "\n" {
                    break;
                }
                headers.push(line.trim_end().to_ascii_lowercase());
            }
            self.requests.lock().unwrap().push(request_line.trim_end().to_owned());
            if !read_body(&mut reader, &headers) {
                return;
            }

            let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
            let response = match path.strip_prefix("/redirect?to=") {
                Some(location) => {
                    format!("HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n")
                }
                None => {
                    let body = format!("backend {} {path}", self.address);
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                }
            };
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// Reads a request body framed by Content-Length or chunked coding; false when it breaks off.
fn read_body(reader: &mut BufReader<TcpStream>, headers: &[String]) -> bool {
    if headers.iter().any(|header| header.starts_with("transfer-encoding:") && header.contains("chunked")) {
        loop {
            let mut size_line = String::new();
            if reader.read_line(&mut size_line).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(size) = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16) else {
                return false;
            };
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return false;
            }
            if size == 0 {
                return true;
            }
        }
    }
    let length = headers
        .iter()
        .find_map(|header| header.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).is_ok()
}

/// A UDP DNS server answering A and AAAA queries from a table, and recording every query.
///
/// Each name has a queue of answer sets: an A query takes the next set (the last one repeats),
/// and AAAA queries answer from the set the last A query took. Every record has TTL 0.
#[derive(Debug, Clone)]
pub struct StubDns {
    pub address: SocketAddr,
    answers: Arc<Mutex<HashMap<String, VecDeque<Vec<IpAddr>>>>>,
    current: Arc<Mutex<HashMap<String, Vec<IpAddr>>>>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl StubDns {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns = Self {
            address: socket.local_addr().unwrap(),
            answers: Arc::default(),
            current: Arc::default(),
            queries: Arc::default(),
        };
        let shared = dns.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 1500];
            while let Ok((length, peer)) = socket.recv_from(&mut buffer) {
                if let Some(response) = shared.answer(&buffer[..length]) {
                    let _ = socket.send_to(&response, peer);
                }
            }
        });
        dns
    }

    /// Adds answer sets for `name`, one per lookup.
    pub fn set(&self, name: &str, sets: &[&[&str]]) {
        let sets = sets.iter().map(|set| set.iter().map(|address| address.parse().unwrap()).collect()).collect();
        self.answers.lock().unwrap().insert(name.to_owned(), sets);
    }

    /// Returns the names queried so far, lower case without the trailing dot.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }

    fn answer(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(packet).ok()?;
        let query = request.queries().first()?.clone();
        let name = query.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
        self.queries.lock().unwrap().push(name.clone());

        let addresses = match query.query_type() {
            RecordType::A => {
                let mut answers = self.answers.lock().unwrap();
                let set = answers.get_mut(&name).and_then(|queue| match queue.len() {
                    0 => None,
                    1 => queue.front().cloned(),
                    _ => queue.pop_front(),
                });
                if let Some(set) = &set {
                    self.current.lock().unwrap().insert(name.clone(), set.clone());
                }
                set
            }
            _ => self.current.lock().unwrap().get(&name).cloned(),
        };

        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .set_recursion_available(true)
            .set_authoritative(true)
            .add_query(query.clone());
        match addresses {
            None => {
                response.set_response_code(ResponseCode::NXDomain);
            }
            Some(addresses) => {
                response.set_response_code(ResponseCode::NoError);
                for address in addresses {
                    let rdata = match (address, query.query_type()) {
                        (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                        (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                        _ => continue,
                    };
                    response.add_answer(Record::from_rdata(query.name().clone(), 0, rdata));
                }
            }
        }
        response.to_vec().ok()
    }
}

/// Builds a policy document with the given `spec.egress` section (indented by four spaces).
pub fn policy(egress: &str) -> String {
    format!("apiVersion: palisade.dev/v1alpha1\nkind: WorkloadPolicy\nspec:\n  egress:\n{egress}")
}

/// A running `palisade-sidecar proxy`, killed on drop.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    pub address: SocketAddr,
    pub policy_path: PathBuf,
    log_path: PathBuf,
    _directory: tempfile::TempDir,
}

impl ProxyProcess {
    pub fn start(policy_text: &str, dns: Option<&StubDns>, extra_arguments: &[&str]) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let policy_path = directory.path().join("policy.yaml");
        std::fs::write(&policy_path, policy_text).unwrap();
        let log_path = directory.path().join("proxy.log");
        let address = free_port();

        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade-sidecar"));
        command
            .args(["proxy", "--policy"])
            .arg(&policy_path)
            .args(["--listen", &address.to_string(), "--reload-interval", "200ms"])
            .args(extra_arguments)
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap());
        if let Some(dns) = dns {
            command.args(["--dns-server", &dns.address.to_string()]);
        }
        let child = command.spawn().expect("failed to start palisade-sidecar");
        let mut proxy = Self { child, address, policy_path, log_path, _directory: directory };
        proxy.wait_until_listening();
        proxy
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(self.address).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("palisade-sidecar exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("palisade-sidecar did not listen on {} within 20 s: {}", self.address, self.log());
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Returns the `palisade.egress.decision` events written so far.
    pub fn decisions(&self) -> Vec<serde_json::Value> {
        self.log()
            .lines()
            .filter(|line| line.starts_with('{'))
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event_name"] == "palisade.egress.decision")
            .collect()
    }

    /// Waits until `count` decision events were written, and returns them.
    pub fn wait_for_decisions(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let events = self.decisions();
            if events.len() >= count || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the proxy with SIGTERM and returns the counter totals it flushed on the way out, as
    /// `(name, attributes, value)`.
    pub fn terminate_and_read_counters(&mut self) -> Vec<(String, serde_json::Value, u64)> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "palisade-sidecar exited with {exit} on SIGTERM: {}", self.log());

        let metrics = self
            .log()
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["event_name"] == "palisade.metrics")
            .unwrap_or_else(|| panic!("no palisade.metrics line: {}", self.log()));
        metrics["counters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|counter| {
                let name = counter["name"].as_str().unwrap().to_owned();
                (name, counter["attributes"].clone(), counter["value"].as_u64().unwrap())
            })
            .collect()
    }

    pub fn sighup(&self) {
        let status = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Sends raw bytes to the proxy and returns what it answers until it closes the connection (or
/// 5 s pass).
pub fn raw_request(proxy: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(proxy).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Returns the status code of the first response in `response`, or 0 when there is none.
pub fn status_of(response: &str) -> u16 {
    response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Runs curl with the given arguments; returns the HTTP status and the body.
pub fn curl(arguments: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(arguments)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .output()
        .expect("curl is needed for these tests: install it (apt-get install curl)");
    split_status(&output)
}

/// Runs Python `requests.get(url)` with `HTTP_PROXY` and `HTTPS_PROXY` set to the proxy. Returns
/// the status and the body. The status is 0 for a connection error such as a refused tunnel.
pub fn python_requests(proxy: &str, url: &str) -> (u16, String) {
    let script = r#"
import sys, requests, urllib3
urllib3.disable_warnings()
try:
    response = requests.get(sys.argv[1], timeout=10, verify=False, allow_redirects=False)
    sys.stdout.write(response.text + "\n" + str(response.status_code))
except requests.exceptions.ProxyError as error:
    sys.stdout.write(str(error) + "\n0")
"#;
    let output = Command::new("python3")
        .args(["-c", script, url])
        .env("HTTP_PROXY", proxy)
        .env("HTTPS_PROXY", proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("python3 is needed for these tests: install it with the requests package");
    assert!(
        output.status.success(),
        "python3 requests failed (install it with `pip install requests` if missing): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    split_status(&output)
}

fn split_status(output: &Output) -> (u16, String) {
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

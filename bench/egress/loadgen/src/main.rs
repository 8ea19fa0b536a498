//! Load generator and backend for the egress proxy benchmark.
//!
//! - `serve ADDR`: an HTTP/1.1 keep-alive server that returns `200 ok` for every request.
//! - `load TARGET [--proxy ADDR] [--connections N] [--seconds S] [--rate R]`: sends `GET /` to
//!   TARGET (host:port), through the proxy in absolute form when `--proxy` is given, over N
//!   keep-alive connections for S seconds. Without `--rate` each connection sends as fast as
//!   answers come back; with it, requests are scheduled R per second in total and latency counts
//!   from the scheduled time, so a slow answer also delays (and is charged to) the next ones.
//!   Prints one JSON object.
//! - `tunnels TARGET --proxy ADDR --count N --seconds S`: opens N idle CONNECT tunnels, prints
//!   how many opened, and holds them for S seconds.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match arguments.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(arguments[1].parse().expect("serve ADDR"))),
        Some("load") => runtime.block_on(load(Options::parse(&arguments[1..]))),
        Some("tunnels") => runtime.block_on(tunnels(Options::parse(&arguments[1..]))),
        _ => {
            eprintln!("usage: egress-loadgen serve ADDR | load TARGET [options] | tunnels TARGET [options]");
            std::process::exit(2);
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    target: String,
    proxy: Option<SocketAddr>,
    connections: usize,
    seconds: f64,
    rate: Option<f64>,
    count: usize,
}

impl Options {
    fn parse(arguments: &[String]) -> Self {
        let mut options = Self {
            target: arguments.first().expect("TARGET (host:port) is required").clone(),
            proxy: None,
            connections: 50,
            seconds: 10.0,
            rate: None,
            count: 10_000,
        };
        let mut rest = arguments[1..].iter();
        while let Some(flag) = rest.next() {
            let value = rest.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--proxy" => options.proxy = Some(value.parse().expect("--proxy ADDR")),
                "--connections" => options.connections = value.parse().expect("--connections N"),
                "--seconds" => options.seconds = value.parse().expect("--seconds S"),
                "--rate" => options.rate = Some(value.parse().expect("--rate R")),
                "--count" => options.count = value.parse().expect("--count N"),
                other => panic!("unknown option {other}"),
            }
        }
        options
    }
}

async fn serve(address: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = answer_requests(stream).await;
        });
    }
}

async fn answer_requests(mut stream: TcpStream) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find_head_end(&buffer) {
            buffer.drain(..end);
            stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok").await?;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer.windows(4).position(|window| window == b"\r\n\r\n").map(|position| position + 4)
}

fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads one response; returns whether its status was 200 and whether the server closes the
/// connection after it (tinyproxy does after every response).
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<(bool, bool)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find_head_end(buffer) {
            break end;
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let ok = buffer.starts_with(b"HTTP/1.1 200") || buffer.starts_with(b"HTTP/1.0 200");
    let head_text = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let close = head_text.contains("\r\nconnection: close") || head_text.starts_with("http/1.0");
    let total = head_end + content_length(&buffer[..head_end]);
    while buffer.len() < total {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    buffer.drain(..total);
    Ok((ok, close))
}

/// Writes one request and reads its response.
async fn send(stream: &mut TcpStream, request: &[u8], buffer: &mut Vec<u8>) -> io::Result<(bool, bool)> {
    stream.write_all(request).await?;
    read_response(stream, buffer).await
}

#[derive(Debug, Default)]
struct ConnectionResult {
    latencies_us: Vec<u32>,
    errors: u64,
}

async fn load(options: Options) -> io::Result<()> {
    let request = match options.proxy {
        Some(_) => format!("GET http://{0}/ HTTP/1.1\r\nHost: {0}\r\n\r\n", options.target),
        None => format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", options.target),
    };
    let request: Arc<[u8]> = request.into_bytes().into();
    let destination: SocketAddr = match options.proxy {
        Some(proxy) => proxy,
        None => options.target.parse().expect("TARGET must be an address:port"),
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(options.seconds);
    let next_slot = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for _ in 0..options.connections {
        let request = Arc::clone(&request);
        let next_slot = Arc::clone(&next_slot);
        let rate = options.rate;
        tasks.push(tokio::spawn(async move {
            let mut result = ConnectionResult::default();
            let mut buffer = Vec::with_capacity(8192);
            let mut connection: Option<TcpStream> = None;
            // Whether the current connection already carried a request.
            let mut reused = false;
            loop {
                let sent = match rate {
                    Some(rate) => {
                        let slot = next_slot.fetch_add(1, Ordering::Relaxed);
                        let scheduled = started + Duration::from_secs_f64(slot as f64 / rate);
                        if scheduled >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(scheduled.into()).await;
                        scheduled
                    }
                    None => Instant::now(),
                };
                if Instant::now() >= deadline {
                    break;
                }
                // Connect on the first request and again after the server closed; the
                // connect time is part of the request's latency.
                if connection.is_none() {
                    match TcpStream::connect(destination).await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            buffer.clear();
                            connection = Some(stream);
                        }
                        Err(_) => {
                            result.errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let stream = connection.as_mut().expect("connected above");
                let mut answer = send(stream, &request, &mut buffer).await;
                if answer.is_err() && reused {
                    // The server closed the kept connection without saying so: reconnect once
                    // and resend, as HTTP clients do.
                    match TcpStream::connect(destination).await {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            buffer.clear();
                            connection = Some(stream);
                            answer = send(connection.as_mut().expect("just connected"), &request, &mut buffer).await;
                        }
                        Err(error) => answer = Err(error),
                    }
                }
                reused = true;
                match answer {
                    Ok((ok, close)) => {
                        match ok {
                            true => result.latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32),
                            false => result.errors += 1,
                        }
                        if close {
                            connection = None;
                            reused = false;
                        }
                    }
                    Err(_) => {
                        result.errors += 1;
                        connection = None;
                        reused = false;
                    }
                }
            }
            result
        }));
    }

    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let result = task.await.expect("a load task panicked");
        latencies.extend(result.latencies_us);
        errors += result.errors;
    }
    let elapsed = started.elapsed().as_secs_f64().min(options.seconds);
    latencies.sort_unstable();
    let percentile = |fraction: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * fraction).round() as usize]
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"seconds\":{:.2},\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
        latencies.len(),
        errors,
        elapsed,
        latencies.len() as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
        percentile(0.999),
    );
    Ok(())
}

async fn tunnels(options: Options) -> io::Result<()> {
    let proxy = options.proxy.expect("tunnels needs --proxy");
    let request: Arc<[u8]> = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", options.target).into_bytes().into();
    let mut open = Vec::with_capacity(options.count);
    let mut failed = 0usize;
    // Open in batches so the proxy's accept queue is not the limit being measured.
    for batch_start in (0..options.count).step_by(200) {
        let batch = (options.count - batch_start).min(200);
        let mut pending = Vec::with_capacity(batch);
        for _ in 0..batch {
            let request = Arc::clone(&request);
            pending.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(proxy).await?;
                stream.write_all(&request).await?;
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await? == 0 {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                    head.push(byte[0]);
                }
                if head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200") {
                    Ok(stream)
                } else {
                    Err(io::Error::other(String::from_utf8_lossy(&head).into_owned()))
                }
            }));
        }
        for task in pending {
            match task.await.expect("a tunnel task panicked") {
                Ok(stream) => open.push(stream),
                Err(_) => failed += 1,
            }
        }
    }
    println!("{{\"open\":{},\"failed\":{}}}", open.len(), failed);
    tokio::time::sleep(Duration::from_secs_f64(options.seconds)).await;
    drop(open);
    Ok(())
}

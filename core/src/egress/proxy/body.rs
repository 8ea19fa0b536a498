//! Request bodies: reading them from the client under their framing, and the body type handed
//! to the upstream connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::client::ClientReader;
use super::head::BodyFraming;

/// Bytes forwarded per body frame at most.
const FRAME_BYTES: usize = 64 * 1024;

/// Maximum length of a chunk-size line or a trailer line.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum BodyError {
    #[error("invalid chunked framing: {0}")]
    Chunked(String),

    #[error("the request body ended after {received} of {expected} bytes")]
    Truncated { received: u64, expected: u64 },

    #[error("failed to read the request body: {0}")]
    Read(String),

    #[error("the client sent no body bytes within {0:?}")]
    Idle(Duration),
}

impl BodyError {
    /// Whether the client broke the framing, which is answered with 400.
    pub(super) fn is_framing(&self) -> bool {
        matches!(self, Self::Chunked(_))
    }
}

type FrameResult = Result<Frame<Bytes>, BodyError>;

/// The body sent upstream: nothing, or the frames [`pump`] reads from the client.
#[derive(Debug)]
pub(super) struct UpstreamBody {
    frames: Option<mpsc::Receiver<FrameResult>>,
    length: Option<u64>,
}

impl UpstreamBody {
    pub(super) fn empty() -> Self {
        Self { frames: None, length: Some(0) }
    }

    pub(super) fn channel(framing: BodyFraming) -> (Self, mpsc::Sender<FrameResult>) {
        let (sender, receiver) = mpsc::channel(4);
        let length = match framing {
            BodyFraming::Length(length) => Some(length),
            BodyFraming::None => Some(0),
            BodyFraming::Chunked => None,
        };
        (Self { frames: Some(receiver), length }, sender)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        match &mut self.frames {
            Some(frames) => frames.poll_recv(context),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(length) => SizeHint::with_exact(length),
            None => SizeHint::default(),
        }
    }
}

/// Reads a request body from the client and sends it as frames to `sender`. Returns the number
/// of body bytes read.
///
/// A framing error is also sent into the channel so that the upstream request is aborted rather
/// than completed. When the upstream side stops taking frames, the rest of the body is read and
/// discarded so the next request on the connection starts at the right byte.
pub(super) async fn pump(
    reader: &mut ClientReader,
    framing: BodyFraming,
    sender: mpsc::Sender<FrameResult>,
    idle: Duration,
) -> Result<u64, BodyError> {
    let result = match framing {
        BodyFraming::None => Ok(0),
        BodyFraming::Length(length) => pump_length(reader, length, &sender, idle).await,
        BodyFraming::Chunked => pump_chunked(reader, &sender, idle).await,
    };
    if let Err(error) = &result {
        let _ = sender.send(Err(error.clone())).await;
    }
    result
}

async fn pump_length(
    reader: &mut ClientReader,
    expected: u64,
    sender: &mpsc::Sender<FrameResult>,
    idle: Duration,
) -> Result<u64, BodyError> {
    let mut received = 0;
    while received < expected {
        let want = usize::try_from(expected - received).unwrap_or(usize::MAX).min(FRAME_BYTES);
        let data = read_some(reader, want, idle).await?;
        if data.is_empty() {
            return Err(BodyError::Truncated { received, expected });
        }
        received += data.len() as u64;
        // A closed channel means upstream no longer wants the body; keep reading to stay in sync.
        let _ = sender.send(Ok(Frame::data(data))).await;
    }
    Ok(received)
}

async fn pump_chunked(
    reader: &mut ClientReader,
    sender: &mpsc::Sender<FrameResult>,
    idle: Duration,
) -> Result<u64, BodyError> {
    let mut received = 0u64;
    loop {
        let line = read_line(reader, idle).await?;
        let size = parse_chunk_size(&line)?;
        if size == 0 {
            break;
        }

        let mut remaining = size;
        while remaining > 0 {
            let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(FRAME_BYTES);
            let data = read_some(reader, want, idle).await?;
            if data.is_empty() {
                return Err(BodyError::Chunked("the body ended inside a chunk".to_owned()));
            }
            remaining -= data.len() as u64;
            received += data.len() as u64;
            let _ = sender.send(Ok(Frame::data(data))).await;
        }
        if !read_line(reader, idle).await?.is_empty() {
            return Err(BodyError::Chunked("chunk data is longer than its size".to_owned()));
        }
    }

    // Trailer fields are read and dropped: none of them is forwarded.
    loop {
        if read_line(reader, idle).await?.is_empty() {
            return Ok(received);
        }
    }
}

/// Parses a chunk-size line: hexadecimal digits, optionally followed by `;` and extensions.
pub fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let invalid = || BodyError::Chunked(format!("invalid chunk size line {:?}", String::from_utf8_lossy(line)));
    let digits_end = line.iter().position(|byte| !byte.is_ascii_hexdigit()).unwrap_or(line.len());
    let (digits, extension) = line.split_at(digits_end);
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid());
    }
    let extension = extension.trim_ascii_start();
    if !extension.is_empty()
        && (extension[0] != b';' || extension.iter().any(|byte| byte.is_ascii_control() && *byte != b'\t'))
    {
        return Err(invalid());
    }
    let digits = std::str::from_utf8(digits).map_err(|_| invalid())?;
    u64::from_str_radix(digits, 16).map_err(|_| invalid())
}

async fn read_some(reader: &mut ClientReader, want: usize, idle: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(idle, reader.read_some(want)).await {
        Err(_) => Err(BodyError::Idle(idle)),
        Ok(Err(error)) => Err(BodyError::Read(error.to_string())),
        Ok(Ok(data)) => Ok(data),
    }
}

async fn read_line(reader: &mut ClientReader, idle: Duration) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(idle, reader.read_line(MAX_CHUNK_LINE)).await {
        Err(_) => Err(BodyError::Idle(idle)),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::InvalidData => Err(BodyError::Chunked(error.to_string())),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(BodyError::Chunked("the body ended before the last chunk".to_owned()))
        }
        Ok(Err(error)) => Err(BodyError::Read(error.to_string())),
        Ok(Ok(line)) => Ok(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_parsed() {
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"10;name=value").unwrap(), 16);
    }

    #[test]
    fn invalid_chunk_sizes_rejected() {
        for line in [&b""[..], b"g", b"-1", b"+1", b"0x10", b"1 2", b"ffffffffffffffffff", b"1\x00"] {
            assert!(parse_chunk_size(line).is_err(), "{:?} accepted", String::from_utf8_lossy(line));
        }
    }
}

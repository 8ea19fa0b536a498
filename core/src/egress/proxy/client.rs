//! The client side of a proxy connection: buffered reads of request heads and bodies, and
//! error responses.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::head::{self, HeadError, RequestHead};

/// Bytes read from the socket per read call.
const READ_CHUNK: usize = 16 * 1024;

/// An error reading a request head.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadHeadError {
    #[error("the client closed the connection")]
    Closed,

    #[error("the client sent no request within {0:?}")]
    Idle(Duration),

    #[error("the request head did not arrive within {0:?}")]
    Timeout(Duration),

    #[error("failed to read from the client: {0}")]
    Io(#[from] io::Error),

    #[error(transparent)]
    Head(#[from] HeadError),
}

/// The read half of a client connection with the bytes read but not yet consumed.
#[derive(Debug)]
pub(super) struct ClientReader {
    read: OwnedReadHalf,
    buffer: BytesMut,
}

impl ClientReader {
    pub(super) fn new(read: OwnedReadHalf) -> Self {
        Self { read, buffer: BytesMut::new() }
    }

    /// Reads more bytes into the buffer; returns 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_CHUNK);
        self.read.read_buf(&mut self.buffer).await
    }

    /// Reads the next request head. Waits up to `idle` for its first byte and then up to
    /// `header_timeout` for the rest.
    pub(super) async fn read_head(
        &mut self,
        max_bytes: usize,
        idle: Duration,
        header_timeout: Duration,
    ) -> Result<RequestHead, ReadHeadError> {
        if self.buffer.is_empty() {
            match tokio::time::timeout(idle, self.fill()).await {
                Err(_) => return Err(ReadHeadError::Idle(idle)),
                Ok(Ok(0)) => return Err(ReadHeadError::Closed),
                Ok(result) => result?,
            };
        }

        let deadline = tokio::time::Instant::now() + header_timeout;
        loop {
            if let Some((head, length)) = head::parse(&self.buffer, max_bytes)? {
                let _ = self.buffer.split_to(length);
                return Ok(head);
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Err(_) => return Err(ReadHeadError::Timeout(header_timeout)),
                Ok(Ok(0)) => return Err(ReadHeadError::Closed),
                Ok(result) => result?,
            };
        }
    }

    /// Returns up to `limit` bytes: buffered ones first, otherwise one read from the socket.
    /// An empty result means end of stream.
    pub(super) async fn read_some(&mut self, limit: usize) -> io::Result<Bytes> {
        if self.buffer.is_empty() && self.fill().await? == 0 {
            return Ok(Bytes::new());
        }
        let take = limit.min(self.buffer.len());
        Ok(self.buffer.split_to(take).freeze())
    }

    /// Reads one line ending in CRLF and returns it without the CRLF. A bare LF, or a line
    /// longer than `max` bytes, is an error.
    pub(super) async fn read_line(&mut self, max: usize) -> io::Result<Bytes> {
        let invalid = |message: &str| io::Error::new(io::ErrorKind::InvalidData, message.to_owned());
        let mut scanned = 0;
        loop {
            if let Some(offset) = self.buffer[scanned..].iter().position(|byte| *byte == b'\n') {
                let end = scanned + offset;
                if end == 0 || self.buffer[end - 1] != b'\r' {
                    return Err(invalid("a line ends in a bare LF"));
                }
                let line = self.buffer.split_to(end + 1).freeze();
                return Ok(line.slice(..end - 1));
            }
            scanned = self.buffer.len();
            if scanned > max {
                return Err(invalid("a chunk line is too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Gives up the reader, returning the socket and any bytes read past the last request head.
    ///
    /// The bytes are copied out so that the read buffer is freed: a long-lived tunnel keeps only
    /// what the client sent early.
    pub(super) fn into_parts(self) -> (OwnedReadHalf, Bytes) {
        (self.read, Bytes::copy_from_slice(&self.buffer))
    }
}

/// One client connection.
#[derive(Debug)]
pub(super) struct ClientConnection {
    pub(super) reader: ClientReader,
    pub(super) writer: OwnedWriteHalf,
    pub(super) address: SocketAddr,
}

/// Writes a short plain-text response that closes the connection.
pub(super) async fn write_error(writer: &mut OwnedWriteHalf, status: StatusCode, message: &str) -> io::Result<()> {
    let body = format!("{message}\n");
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    writer.write_all(response.as_bytes()).await?;
    writer.shutdown().await
}

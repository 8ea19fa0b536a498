//! Opening and hashing one regular file without following links or blocking on special files.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;

use sha2::Digest as _;

use super::DigestAlgorithm;

/// Files at least this large are hashed with BLAKE3's multi-threaded tree hashing.
const PARALLEL_THRESHOLD: usize = 1 << 20;
const BUFFER_SIZE: usize = 1 << 20;

/// The result of hashing one file.
#[derive(Debug)]
pub(crate) struct Hashed {
    pub digest: Vec<u8>,
    /// The file's metadata from `fstat` before reading.
    pub before: Metadata,
    /// Whether size, mtime or ctime differed after reading from before reading.
    pub changed_while_reading: bool,
}

/// The reason a path could not be hashed.
#[derive(Debug)]
pub(crate) enum HashFailure {
    /// The path is no longer the regular file `lstat` saw (replaced between `lstat` and `open`).
    Replaced,
    Io(&'static str, io::Error),
}

/// Opens `path` with `O_NOFOLLOW | O_NONBLOCK` and returns it with its `fstat` metadata when it
/// is a regular file. A symbolic link fails to open (`ELOOP`); any other type is closed again
/// without being read.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata), HashFailure> {
    let opened =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY).open(path);
    regular_file(opened)
}

/// Opens `name` in `directory` like [`open_regular`], without walking a path.
pub(crate) fn open_regular_at(directory: BorrowedFd<'_>, name: &OsStr) -> Result<(File, Metadata), HashFailure> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let opened = openat(directory, name, flags, Mode::empty()).map(File::from).map_err(io::Error::from);
    regular_file(opened)
}

/// Returns an opened file with its `fstat` metadata when it is a regular file.
fn regular_file(opened: io::Result<File>) -> Result<(File, Metadata), HashFailure> {
    let file = opened.map_err(|error| match error.raw_os_error() {
        // A symbolic link or special file took the regular file's place.
        Some(libc::ELOOP) | Some(libc::ENXIO) => HashFailure::Replaced,
        _ => HashFailure::Io("open", error),
    })?;
    let metadata = file.metadata().map_err(|error| HashFailure::Io("fstat", error))?;
    if !metadata.is_file() {
        return Err(HashFailure::Replaced);
    }
    Ok((file, metadata))
}

/// Opens `path`, checks with `fstat` that it is the regular file `expected` describes, hashes
/// it, and compares the metadata again afterwards.
pub(crate) fn hash_file(path: &Path, expected: &Metadata, algorithm: DigestAlgorithm) -> Result<Hashed, HashFailure> {
    let (file, before) = open_regular(path)?;
    if before.ino() != expected.ino() || before.dev() != expected.dev() {
        return Err(HashFailure::Replaced);
    }
    hash_open(file, before, algorithm)
}

/// Hashes an open regular file whose `fstat` metadata before reading is `before`, and compares
/// size, mtime and ctime again afterwards.
pub(crate) fn hash_open(mut file: File, before: Metadata, algorithm: DigestAlgorithm) -> Result<Hashed, HashFailure> {
    let digest = read_digest(&mut file, algorithm, before.size()).map_err(|error| HashFailure::Io("read", error))?;

    let after = file.metadata().map_err(|error| HashFailure::Io("fstat", error))?;
    let changed_while_reading = after.size() != before.size()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
        || after.ctime() != before.ctime()
        || after.ctime_nsec() != before.ctime_nsec();
    Ok(Hashed { digest, before, changed_while_reading })
}

fn read_digest(file: &mut File, algorithm: DigestAlgorithm, size: u64) -> io::Result<Vec<u8>> {
    thread_local! {
        static BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }

    // The buffer is taken out of the thread-local, not borrowed from it: while `update_rayon`
    // waits for its other half, rayon may run another file's hashing on this thread, which
    // then finds no buffer and allocates its own.
    let mut buffer = BUFFER.take();
    if buffer.is_empty() {
        buffer = vec![0; BUFFER_SIZE];
    }

    let digest = match algorithm {
        DigestAlgorithm::Blake3 => {
            let mut hasher = blake3::Hasher::new();
            let parallel = size >= PARALLEL_THRESHOLD as u64;
            read_chunks(file, &mut buffer, size, |chunk| {
                if parallel {
                    hasher.update_rayon(chunk);
                } else {
                    hasher.update(chunk);
                }
            })
            .map(|()| hasher.finalize().as_bytes().to_vec())
        }
        DigestAlgorithm::Sha256 => {
            let mut hasher = sha2::Sha256::new();
            read_chunks(file, &mut buffer, size, |chunk| hasher.update(chunk)).map(|()| hasher.finalize().to_vec())
        }
    };

    BUFFER.set(buffer);
    digest
}

/// Reads `file` to its end, passing each filled buffer to `consume`. Reading stops without a
/// final zero-length read once `expected` bytes (the size from `fstat`) arrived in a short read:
/// a file that grows meanwhile has a new size and mtime, which the caller's second `fstat` detects.
fn read_chunks(file: &mut File, buffer: &mut [u8], expected: u64, mut consume: impl FnMut(&[u8])) -> io::Result<()> {
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            if filled > 0 && total + filled as u64 >= expected {
                break;
            }
            match file.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        consume(&buffer[..filled]);
        total += filled as u64;
        if filled < buffer.len() {
            return Ok(());
        }
    }
}

/// Hashes `bytes`, for tests and callers that already have the content in memory.
pub fn digest_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Vec<u8> {
    match algorithm {
        DigestAlgorithm::Blake3 => blake3::hash(bytes).as_bytes().to_vec(),
        DigestAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
    }
}

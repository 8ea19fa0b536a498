//! The manifest format: versioned, line-based text, deterministic for a given tree.
//!
//! ```text
//! palisade-integrity-manifest 1
//! algorithm blake3
//! pseudo-filesystems skip
//! root /usr
//! exclude /usr/share/doc/**
//! high-assurance /usr/bin
//! entries 2
//! <path> <type> <mode> <uid> <gid> <size> <mtime> <ctime> <device> <inode> <nlink> <rdev> <target> <xattrs> <digest> <note>
//! ...
//! end
//! signature ed25519 <public key hex> <signature hex>
//! ```
//!
//! Entry fields are separated by tabs and sorted by path bytes. Paths, link targets, globs and
//! extended attribute names are escaped with [`escape`], so any byte string, newlines included,
//! survives a round trip. `-` stands for an absent field. Extended attributes are
//! `name=hexvalue` pairs joined by `;`. The optional signature covers every byte before its line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use rayon::prelude::*;

use super::entry::{escape, escape_into, escape_path, unescape, Entry, EntryKind, EntryNote, Timestamp};
use super::{DigestAlgorithm, IntegrityError, Scope};

/// The format version this release writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const MAGIC: &str = "palisade-integrity-manifest";
const FIELDS: usize = 16;
/// Number of entries that one worker encodes into one buffer.
const ENCODE_BLOCK: usize = 4096;

/// A recorded baseline: what was covered, how, and every entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub algorithm: DigestAlgorithm,
    /// Whether pseudo-filesystems (proc, sysfs, ...) were descended.
    pub descend_pseudo: bool,
    pub scope: Scope,
    /// Entries sorted by path bytes.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Encodes the manifest without a signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::with_capacity(128 + self.entries.len() * 160);
        let _ = writeln!(text, "{MAGIC} {FORMAT_VERSION}");
        let _ = writeln!(text, "algorithm {}", algorithm_name(self.algorithm));
        let _ = writeln!(text, "pseudo-filesystems {}", if self.descend_pseudo { "descend" } else { "skip" });
        for root in &self.scope.roots {
            let _ = writeln!(text, "root {}", escape_path(root));
        }
        for pattern in &self.scope.exclude {
            let _ = writeln!(text, "exclude {}", escape(pattern.as_bytes()));
        }
        for root in &self.scope.high_assurance {
            let _ = writeln!(text, "high-assurance {}", escape_path(root));
        }
        let _ = writeln!(text, "entries {}", self.entries.len());
        // Entries are encoded in parallel, a block of them into each buffer.
        let blocks: Vec<String> = self
            .entries
            .par_chunks(ENCODE_BLOCK)
            .map(|entries| {
                let mut block = String::with_capacity(entries.len() * 200);
                for entry in entries {
                    encode_entry(&mut block, entry);
                }
                block
            })
            .collect();
        text.reserve(blocks.iter().map(String::len).sum::<usize>() + 4);
        for block in blocks {
            text.push_str(&block);
        }
        text.push_str("end\n");
        text.into_bytes()
    }

    /// Encodes the manifest and appends an ed25519 signature over the encoding.
    pub fn encode_signed(&self, key: &SigningKey) -> Vec<u8> {
        let mut bytes = self.encode();
        let signature = key.sign(&bytes);
        let line = format!(
            "signature ed25519 {} {}\n",
            hex::encode(key.verifying_key().as_bytes()),
            hex::encode(signature.to_bytes())
        );
        bytes.extend_from_slice(line.as_bytes());
        bytes
    }

    /// Decodes a manifest. With `trusted_key`, the manifest must carry a valid signature by that
    /// key; without it, a signature line is parsed but not checked.
    pub fn decode(bytes: &[u8], trusted_key: Option<&VerifyingKey>) -> Result<Self, IntegrityError> {
        let text = std::str::from_utf8(bytes).map_err(|error| IntegrityError::ParseManifest {
            line: 1 + bytes[..error.valid_up_to()].iter().filter(|&&byte| byte == b'\n').count(),
            message: "the manifest is not ASCII text".to_owned(),
        })?;

        let body_length = match text.find("\nend\n") {
            Some(index) => index + "\nend\n".len(),
            None => return Err(parse_error(text.lines().count(), "missing \"end\" line: the manifest is truncated")),
        };
        check_signature(&bytes[..body_length], &text[body_length..], trusted_key, text[..body_length].lines().count())?;

        let mut lines = text[..body_length].lines().enumerate().map(|(index, line)| (index + 1, line)).peekable();
        let mut next = |expected: &str| {
            lines.next().ok_or_else(|| parse_error(0, &format!("missing {expected} line: the manifest is truncated")))
        };

        let (number, header) = next("header")?;
        match header.split_once(' ') {
            Some((MAGIC, version)) if version == FORMAT_VERSION.to_string() => {}
            Some((MAGIC, version)) => {
                return Err(parse_error(
                    number,
                    &format!("unsupported format version {version:?}: this release reads version {FORMAT_VERSION}"),
                ))
            }
            _ => return Err(parse_error(number, &format!("not a Palisade integrity manifest: expected {MAGIC:?}"))),
        }

        let (number, line) = next("algorithm")?;
        let algorithm = match line.strip_prefix("algorithm ") {
            Some("blake3") => DigestAlgorithm::Blake3,
            Some("sha256") => DigestAlgorithm::Sha256,
            _ => return Err(parse_error(number, "expected \"algorithm blake3\" or \"algorithm sha256\"")),
        };

        let (number, line) = next("pseudo-filesystems")?;
        let descend_pseudo = match line.strip_prefix("pseudo-filesystems ") {
            Some("skip") => false,
            Some("descend") => true,
            _ => {
                return Err(parse_error(
                    number,
                    "expected \"pseudo-filesystems skip\" or \"pseudo-filesystems descend\"",
                ))
            }
        };

        let mut scope = Scope::default();
        let entry_count = loop {
            let (number, line) = next("entries")?;
            let (key, value) = line.split_once(' ').ok_or_else(|| parse_error(number, "expected \"KEY VALUE\""))?;
            let bytes = || unescape(value).ok_or_else(|| parse_error(number, "invalid escape sequence"));
            match key {
                "root" => scope.roots.push(PathBuf::from(std::ffi::OsString::from_vec(bytes()?))),
                "exclude" => scope.exclude.push(
                    String::from_utf8(bytes()?).map_err(|_| parse_error(number, "an exclude glob must be UTF-8"))?,
                ),
                "high-assurance" => scope.high_assurance.push(PathBuf::from(std::ffi::OsString::from_vec(bytes()?))),
                "entries" => break value.parse::<usize>().map_err(|_| parse_error(number, "invalid entry count"))?,
                _ => return Err(parse_error(number, &format!("unknown header key {key:?}"))),
            }
        };

        // Entry lines are independent, so they are decoded in parallel.
        let lines: Vec<(usize, &str)> = (0..entry_count).map(|_| next("entry")).collect::<Result<_, _>>()?;
        let entries: Vec<Entry> = lines
            .par_iter()
            .map(|(number, line)| decode_entry(line).map_err(|message| parse_error(*number, &message)))
            .collect::<Result<_, _>>()?;
        for (index, pair) in entries.windows(2).enumerate() {
            if pair[0].path_bytes() >= pair[1].path_bytes() {
                return Err(parse_error(lines[index + 1].0, "entries are not sorted by path or a path repeats"));
            }
        }

        let (number, line) = next("end")?;
        if line != "end" {
            return Err(parse_error(number, &format!("expected \"end\" after {entry_count} entries")));
        }
        scope.exclude_set()?;
        Ok(Self { algorithm, descend_pseudo, scope, entries })
    }
}

fn check_signature(
    body: &[u8],
    rest: &str,
    trusted_key: Option<&VerifyingKey>,
    body_lines: usize,
) -> Result<(), IntegrityError> {
    let line = rest.strip_suffix('\n').unwrap_or(rest);
    if line.is_empty() {
        return match trusted_key {
            Some(_) => Err(IntegrityError::ManifestUnsigned),
            None => Ok(()),
        };
    }

    let number = body_lines + 1;
    let fields: Vec<&str> = line.split(' ').collect();
    let ["signature", "ed25519", public_key, signature] = fields[..] else {
        return Err(parse_error(number, "expected \"signature ed25519 PUBLIC_KEY SIGNATURE\" after \"end\""));
    };
    let public_key: [u8; 32] = hex::decode(public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| parse_error(number, "invalid public key: expected 64 hex digits"))?;
    let signature: [u8; 64] = hex::decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| parse_error(number, "invalid signature: expected 128 hex digits"))?;

    let Some(trusted_key) = trusted_key else {
        return Ok(());
    };
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    if public_key != *trusted_key.as_bytes() || trusted_key.verify(body, &signature).is_err() {
        return Err(IntegrityError::BadSignature { public_key: hex::encode(trusted_key.as_bytes()) });
    }
    Ok(())
}

fn parse_error(line: usize, message: &str) -> IntegrityError {
    IntegrityError::ParseManifest { line, message: message.to_owned() }
}

pub(crate) fn algorithm_name(algorithm: DigestAlgorithm) -> &'static str {
    match algorithm {
        DigestAlgorithm::Blake3 => "blake3",
        DigestAlgorithm::Sha256 => "sha256",
    }
}

/// Appends one entry's line: tab-separated fields, `-` for an absent one.
fn encode_entry(text: &mut String, entry: &Entry) {
    escape_into(text, entry.path_bytes());
    let _ = write!(
        text,
        "\t{}\t{:04o}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
        entry.kind,
        entry.mode,
        entry.uid,
        entry.gid,
        entry.size,
        entry.mtime,
        entry.ctime,
        entry.device,
        entry.inode,
        entry.nlink,
        entry.rdev,
    );

    match &entry.target {
        Some(target) => escape_into(text, target.as_os_str().as_bytes()),
        None => text.push('-'),
    }
    text.push('\t');

    if entry.xattrs.is_empty() {
        text.push('-');
    }
    for (index, (name, value)) in entry.xattrs.iter().enumerate() {
        if index > 0 {
            text.push(';');
        }
        escape_into(text, name);
        text.push('=');
        push_hex(text, value);
    }
    text.push('\t');

    match &entry.digest {
        Some(digest) => push_hex(text, digest),
        None => text.push('-'),
    }
    text.push('\t');

    match &entry.note {
        Some(EntryNote::PseudoFilesystem(name)) => {
            text.push_str("pseudo:");
            escape_into(text, name.as_bytes());
        }
        None => text.push('-'),
    }
    text.push('\n');
}

/// Appends `bytes` as lowercase hexadecimal.
fn push_hex(text: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in bytes {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
}

fn decode_entry(line: &str) -> Result<Entry, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != FIELDS {
        return Err(format!("expected {FIELDS} tab-separated fields, found {}", fields.len()));
    }
    let path_bytes =
        |value: &str, name: &str| unescape(value).ok_or_else(|| format!("invalid escape sequence in {name}"));
    let number = |value: &str, name: &str| value.parse::<u64>().map_err(|_| format!("invalid {name} {value:?}"));
    let id = |value: &str, name: &str| value.parse::<u32>().map_err(|_| format!("invalid {name} {value:?}"));
    let time = |value: &str, name: &str| Timestamp::parse(value).ok_or_else(|| format!("invalid {name} {value:?}"));

    let path = PathBuf::from(std::ffi::OsString::from_vec(path_bytes(fields[0], "path")?));
    let kind = EntryKind::parse(fields[1]).ok_or_else(|| format!("unknown entry type {:?}", fields[1]))?;
    let mode = u32::from_str_radix(fields[2], 8).map_err(|_| format!("invalid mode {:?}", fields[2]))?;
    let target = match fields[12] {
        "-" => None,
        value => Some(PathBuf::from(std::ffi::OsString::from_vec(path_bytes(value, "link target")?))),
    };
    let mut xattrs = BTreeMap::new();
    if fields[13] != "-" {
        for pair in fields[13].split(';') {
            let (name, value) = pair.split_once('=').ok_or_else(|| format!("invalid extended attribute {pair:?}"))?;
            let value = hex::decode(value).map_err(|_| format!("invalid extended attribute value in {pair:?}"))?;
            xattrs.insert(path_bytes(name, "extended attribute name")?, value);
        }
    }
    let digest = match fields[14] {
        "-" => None,
        value => Some(hex::decode(value).map_err(|_| format!("invalid digest {value:?}"))?),
    };
    let note = match fields[15] {
        "-" => None,
        value => match value.strip_prefix("pseudo:") {
            Some(name) => Some(EntryNote::PseudoFilesystem(
                String::from_utf8(path_bytes(name, "filesystem type")?).map_err(|_| "invalid filesystem type")?,
            )),
            None => return Err(format!("unknown note {value:?}")),
        },
    };

    Ok(Entry {
        path,
        kind,
        mode,
        uid: id(fields[3], "uid")?,
        gid: id(fields[4], "gid")?,
        size: number(fields[5], "size")?,
        mtime: time(fields[6], "mtime")?,
        ctime: time(fields[7], "ctime")?,
        device: number(fields[8], "device")?,
        inode: number(fields[9], "inode")?,
        nlink: number(fields[10], "nlink")?,
        rdev: number(fields[11], "rdev")?,
        target,
        xattrs,
        digest,
        note,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn entry(path: &[u8]) -> Entry {
        Entry {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
            kind: EntryKind::File,
            mode: 0o4755,
            uid: 0,
            gid: 1000,
            size: 3,
            mtime: Timestamp { seconds: 1_700_000_000, nanoseconds: 5 },
            ctime: Timestamp { seconds: 1_700_000_001, nanoseconds: 999_999_999 },
            device: 2049,
            inode: 77,
            nlink: 2,
            rdev: 0,
            target: Some(PathBuf::from(std::ffi::OsStr::from_bytes(b"../t\narget"))),
            xattrs: BTreeMap::from([
                (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
                (b"user.a=b;c".to_vec(), vec![]),
            ]),
            digest: Some(vec![0xab; 32]),
            note: None,
        }
    }

    fn manifest() -> Manifest {
        let mut entries = vec![entry(b"/r/name\nwith newline"), entry(b"/r/\xff\xfe not utf-8"), entry(b"/r")];
        entries[2].note = Some(EntryNote::PseudoFilesystem("proc".to_owned()));
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        Manifest {
            algorithm: DigestAlgorithm::Sha256,
            descend_pseudo: false,
            scope: Scope {
                roots: vec![PathBuf::from("/r")],
                exclude: vec!["/r/**/*.tmp".to_owned()],
                high_assurance: vec![PathBuf::from("/r/bin")],
            },
            entries,
        }
    }

    #[test]
    fn manifest_round_trips_byte_names() {
        let manifest = manifest();
        let decoded = Manifest::decode(&manifest.encode(), None).unwrap();
        assert_eq!(decoded, manifest);
    }

    #[test]
    fn manifest_encoding_is_deterministic() {
        assert_eq!(manifest().encode(), manifest().encode());
    }

    #[test]
    fn signed_manifest_verifies_with_its_key() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = manifest().encode_signed(&key);

        assert_eq!(Manifest::decode(&bytes, Some(&key.verifying_key())).unwrap(), manifest());
    }

    #[test]
    fn tampered_manifest_fails_signature_check() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let mut bytes = manifest().encode_signed(&key);
        let index = bytes.windows(4).position(|window| window == b"4755").unwrap();
        bytes[index] = b'0';

        let error = Manifest::decode(&bytes, Some(&key.verifying_key())).unwrap_err();
        assert!(matches!(error, IntegrityError::BadSignature { .. }), "{error}");
    }

    #[test]
    fn signature_by_other_key_is_rejected() {
        let bytes = manifest().encode_signed(&SigningKey::from_bytes(&[7; 32]));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();

        assert!(matches!(Manifest::decode(&bytes, Some(&other)), Err(IntegrityError::BadSignature { .. })));
    }

    #[test]
    fn unsigned_manifest_is_rejected_when_key_given() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert!(matches!(Manifest::decode(&manifest().encode(), Some(&key)), Err(IntegrityError::ManifestUnsigned)));
    }

    #[test]
    fn truncated_manifest_is_rejected() {
        let bytes = manifest().encode();
        let error = Manifest::decode(&bytes[..bytes.len() - 10], None).unwrap_err();
        assert!(error.to_string().contains("truncated"), "{error}");
    }
}

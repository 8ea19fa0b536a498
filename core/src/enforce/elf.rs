//! Reads the program interpreter (PT_INTERP) of ELF executables.
//!
//! The kernel opens a dynamic executable's interpreter (the dynamic loader) for execution, so
//! Landlock must grant it execute for the executable to start.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const PT_INTERP: u32 = 3;
/// Program headers read at most; real executables have a dozen.
const MAX_PROGRAM_HEADERS: u16 = 256;
/// Longest interpreter path accepted.
const MAX_INTERPRETER_LENGTH: u64 = 4096;

/// The interpreters of the ELF executables among `paths`, without duplicates, as the executables
/// name them. A rule on an interpreter path applies to the file it resolves to.
///
/// Directories and non-ELF files are passed over.
// NOTE: executables inside an allowed directory are not inspected; a policy that allows a
// directory of dynamic executables lists their loader (for example /lib64) itself.
pub fn interpreters_of<'a>(paths: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let mut interpreters = Vec::new();
    for path in paths {
        let Some(interpreter) = interpreter_of(path) else { continue };
        if !interpreters.contains(&interpreter) {
            interpreters.push(interpreter);
        }
    }
    interpreters
}

/// The PT_INTERP path of a 64-bit little-endian ELF file, if it has one.
pub fn interpreter_of(path: &Path) -> Option<PathBuf> {
    let mut file = File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }

    let mut header = [0u8; 64];
    file.read_exact(&mut header).ok()?;
    if header[..4] != ELF_MAGIC || header[4] != ELFCLASS64 || header[5] != ELFDATA2LSB {
        return None;
    }
    let program_header_offset = u64::from_le_bytes(header[0x20..0x28].try_into().ok()?);
    let entry_size = u16::from_le_bytes(header[0x36..0x38].try_into().ok()?);
    let entry_count = u16::from_le_bytes(header[0x38..0x3a].try_into().ok()?);
    if entry_size < 56 || entry_count > MAX_PROGRAM_HEADERS {
        return None;
    }

    let mut table = vec![0u8; usize::from(entry_size) * usize::from(entry_count)];
    file.seek(SeekFrom::Start(program_header_offset)).ok()?;
    file.read_exact(&mut table).ok()?;
    for entry in table.chunks_exact(usize::from(entry_size)) {
        let kind = u32::from_le_bytes(entry[0..4].try_into().ok()?);
        if kind != PT_INTERP {
            continue;
        }
        let offset = u64::from_le_bytes(entry[8..16].try_into().ok()?);
        let size = u64::from_le_bytes(entry[32..40].try_into().ok()?);
        if size == 0 || size > MAX_INTERPRETER_LENGTH {
            return None;
        }

        let mut name = vec![0u8; usize::try_from(size).ok()?];
        file.seek(SeekFrom::Start(offset)).ok()?;
        file.read_exact(&mut name).ok()?;
        let end = name.iter().position(|&byte| byte == 0).unwrap_or(name.len());
        return Some(PathBuf::from(OsStr::from_bytes(&name[..end])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_executable_has_interpreter() {
        let interpreter = interpreter_of(Path::new("/bin/sh")).expect("/bin/sh is dynamically linked");
        assert!(interpreter.to_string_lossy().contains("ld-"), "{}", interpreter.display());
    }

    #[test]
    fn non_elf_files_have_none() {
        assert_eq!(interpreter_of(Path::new("/etc/hostname")), None);
        assert_eq!(interpreter_of(Path::new("/nonexistent")), None);
        assert_eq!(interpreter_of(Path::new("/usr")), None);
    }
}

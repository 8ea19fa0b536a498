//! The raw system calls integrity checking needs and the safe crates do not wrap: reading
//! extended attributes without following symbolic links, and fanotify with file handles.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Reads every extended attribute of `path` itself (a symbolic link is not followed).
///
/// Filesystems without extended attribute support return an empty map.
pub fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let path = c_path(path)?;
    let mut xattrs = BTreeMap::new();

    let names = loop {
        // SAFETY: `path` is a NUL-terminated string; a null buffer with size 0 asks for the size.
        let size = unsafe { libc::llistxattr(path.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(xattrs),
                _ => Err(error),
            };
        }
        if size == 0 {
            return Ok(xattrs);
        }
        let mut buffer = vec![0u8; size as usize];
        // SAFETY: `buffer` is writable for `buffer.len()` bytes and outlives the call.
        let written = unsafe { libc::llistxattr(path.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if written >= 0 {
            buffer.truncate(written as usize);
            break buffer;
        }
        let error = io::Error::last_os_error();
        // The list grew between the two calls: ask for the size again.
        if error.raw_os_error() != Some(libc::ERANGE) {
            return Err(error);
        }
    };

    for name in names.split(|&byte| byte == 0).filter(|name| !name.is_empty()) {
        let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        match read_xattr(&path, &c_name)? {
            Some(value) => xattrs.insert(name.to_vec(), value),
            // Removed between listing and reading.
            None => continue,
        };
    }
    Ok(xattrs)
}

fn read_xattr(path: &CString, name: &CString) -> io::Result<Option<Vec<u8>>> {
    loop {
        // SAFETY: both strings are NUL-terminated; a null buffer with size 0 asks for the size.
        let size = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ENODATA) => Ok(None),
                _ => Err(error),
            };
        }
        let mut value = vec![0u8; size as usize];
        // SAFETY: `value` is writable for `value.len()` bytes and outlives the call.
        let read =
            unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        if read >= 0 {
            value.truncate(read as usize);
            return Ok(Some(value));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::ERANGE) => continue,
            Some(libc::ENODATA) => return Ok(None),
            _ => return Err(error),
        }
    }
}

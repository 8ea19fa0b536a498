//! The raw system calls integrity checking needs and the safe crates do not wrap: reading
//! extended attributes without following symbolic links, and fanotify with file handles.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// The source of extended attributes: a path (not following a final symbolic link) or an open
/// file.
enum Target<'a> {
    Path(CString),
    Fd(BorrowedFd<'a>),
}

impl Target<'_> {
    fn list(&self, buffer: &mut [u8]) -> isize {
        let (pointer, size) =
            if buffer.is_empty() { (std::ptr::null_mut(), 0) } else { (buffer.as_mut_ptr().cast(), buffer.len()) };
        match self {
            // SAFETY: the path is NUL-terminated; `pointer` is null with size 0 (a size query) or
            // points to `size` writable bytes that outlive the call.
            Self::Path(path) => unsafe { libc::llistxattr(path.as_ptr(), pointer, size) },
            // SAFETY: the descriptor is open for the call's duration; the buffer as above.
            Self::Fd(fd) => unsafe { libc::flistxattr(fd.as_raw_fd(), pointer, size) },
        }
    }

    fn get(&self, name: &CString, buffer: &mut [u8]) -> isize {
        let (pointer, size) =
            if buffer.is_empty() { (std::ptr::null_mut(), 0) } else { (buffer.as_mut_ptr().cast(), buffer.len()) };
        match self {
            // SAFETY: both strings are NUL-terminated; the buffer as in `list`.
            Self::Path(path) => unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), pointer, size) },
            // SAFETY: the descriptor is open and `name` NUL-terminated; the buffer as in `list`.
            Self::Fd(fd) => unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), pointer, size) },
        }
    }
}

/// Reads every extended attribute of `path` itself (a symbolic link is not followed).
///
/// Filesystems without extended attribute support return an empty map.
pub fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    read_xattrs_of(&Target::Path(c_path(path)?))
}

/// Reads every extended attribute of an open file.
pub fn read_xattrs_fd(fd: BorrowedFd<'_>) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    read_xattrs_of(&Target::Fd(fd))
}

fn read_xattrs_of(target: &Target<'_>) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut xattrs = BTreeMap::new();

    let names = loop {
        let size = target.list(&mut []);
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
        let written = target.list(&mut buffer);
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
        match read_xattr(target, &c_name)? {
            Some(value) => xattrs.insert(name.to_vec(), value),
            // Removed between listing and reading.
            None => continue,
        };
    }
    Ok(xattrs)
}

fn read_xattr(target: &Target<'_>, name: &CString) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = target.get(name, &mut []);
        if size < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ENODATA) => Ok(None),
                _ => Err(error),
            };
        }
        // A zero-length value needs no second call.
        if size == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut value = vec![0u8; size as usize];
        let read = target.get(name, &mut value);
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

/// Creates a fanotify group that reports events with the parent directory's file handle and
/// the entry name (`FAN_REPORT_DFID_NAME`), non-blocking. Needs `CAP_SYS_ADMIN`.
pub fn fanotify_init() -> io::Result<OwnedFd> {
    let flags = libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK | libc::FAN_REPORT_DFID_NAME;
    let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as libc::c_uint;
    // SAFETY: fanotify_init takes only flag values and returns a new descriptor or -1.
    let fd = unsafe { libc::fanotify_init(flags, event_flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds a filesystem mark for `mask` on the filesystem containing `path`.
pub fn fanotify_mark_filesystem(group: BorrowedFd<'_>, path: &Path, mask: u64) -> io::Result<()> {
    let c_path = c_path(path)?;
    let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM;
    // SAFETY: `group` is a valid fanotify descriptor and `c_path` a NUL-terminated string that
    // outlives the call.
    let result = unsafe { libc::fanotify_mark(group.as_raw_fd(), flags, mask, libc::AT_FDCWD, c_path.as_ptr()) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns the filesystem id (`f_fsid` of `statfs`) of the filesystem containing `path`, as fanotify
/// reports it in events.
pub fn filesystem_id(path: &Path) -> io::Result<[i32; 2]> {
    let c_path = c_path(path)?;
    // SAFETY: `statfs` is plain old data, so all zero bytes is a valid value.
    let mut buffer: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `buffer` is a writable statfs.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut buffer) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fsid_t` is `#[repr(C)]` around `[c_int; 2]` (its field is private in libc), so it
    // has the same size and layout as `[i32; 2]`.
    Ok(unsafe { std::mem::transmute::<libc::fsid_t, [i32; 2]>(buffer.f_fsid) })
}

/// Opens the object a file handle from a fanotify event refers to, with `O_PATH`. `handle` is
/// a `struct file_handle` as the event carries it: handle_bytes, handle_type, then the bytes.
pub fn open_by_handle(mount: BorrowedFd<'_>, handle: &[u8]) -> io::Result<OwnedFd> {
    if handle.len() < 8 {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    // Copy into 4-byte aligned storage: the kernel reads `struct file_handle` with int fields.
    let mut aligned = vec![0u32; handle.len().div_ceil(4)];
    for (index, byte) in handle.iter().enumerate() {
        let word = &mut aligned[index / 4];
        let mut bytes = word.to_ne_bytes();
        bytes[index % 4] = *byte;
        *word = u32::from_ne_bytes(bytes);
    }
    let declared = aligned[0] as usize;
    if 8 + declared > handle.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    // SAFETY: `aligned` contains a complete `struct file_handle` (header plus `handle_bytes` bytes,
    // checked above), is suitably aligned and outlives the call; `mount` is a valid descriptor.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount.as_raw_fd(),
            aligned.as_mut_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the system call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

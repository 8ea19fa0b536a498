//! seccomp filters with a user-notification listener, and the listener's ioctls.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// One system call the kernel stopped and handed to the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    /// The cookie of the response to this call, valid until the response or the caller's death.
    pub id: u64,
    /// The calling thread's id in the supervisor's pid namespace.
    pub tid: u32,
    pub nr: i32,
    pub arch: u32,
    pub args: [u64; 6],
}

/// The response to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// Fail the call with this errno.
    Fail(i32),
    /// Let the kernel run the call as if the filter had allowed it.
    Continue,
}

/// Installs `program` on every thread of this process with a notification listener and returns
/// the listener.
///
/// SECCOMP_FILTER_FLAG_TSYNC alone returns the id of a thread it could not synchronise, which
/// would be indistinguishable from the listener fd. With TSYNC_ESRCH that failure is ESRCH.
pub fn install_with_listener(program: &[libc::sock_filter]) -> Result<OwnedFd, Errno> {
    let length = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog { len: length, filter: program.as_ptr().cast_mut() };
    let flags = libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
        | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies the
    // instructions and reads nothing else.
    let result =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, std::ptr::addr_of!(fprog)) };
    if result < 0 {
        return Err(Errno::last());
    }
    let fd = i32::try_from(result).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just created `fd` for this process and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for the next notification on `listener`.
///
/// ENOENT means the calling thread died or was interrupted by a signal before the notification
/// was received; the caller should receive again.
pub fn receive(listener: BorrowedFd<'_>) -> Result<Notification, Errno> {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed before RECV.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV writes one seccomp_notif into the buffer, which is valid and large enough.
    let result = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &raw mut notif) };
    if result < 0 {
        return Err(Errno::last());
    }
    Ok(Notification { id: notif.id, tid: notif.pid, nr: notif.data.nr, arch: notif.data.arch, args: notif.data.args })
}

/// Sends the response to notification `id`. ENOENT means the caller is gone or was interrupted.
pub fn respond(listener: BorrowedFd<'_>, id: u64, response: Response) -> Result<(), Errno> {
    let (error, flags) = match response {
        Response::Fail(errno) => (-errno, 0),
        Response::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
    };
    let mut response = libc::seccomp_notif_resp { id, val: 0, error, flags };
    // SAFETY: SEND reads one seccomp_notif_resp from the buffer, which is valid and initialised.
    let result = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &raw mut response) };
    if result < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Checks whether notification `id` still waits for a response, that is whether its thread is
/// still the one that made the call (and its pid has not been reused since).
pub fn is_pending(listener: BorrowedFd<'_>, id: u64) -> bool {
    let mut cookie = id;
    // SAFETY: ID_VALID reads one u64 from the pointer, which is valid and initialised.
    let result = unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &raw mut cookie) };
    result == 0
}

/// Asks the kernel to wake the supervisor on the caller's CPU when a notification arrives
/// (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6), which shortens each round trip. Older kernels
/// return EINVAL and keep the ordinary wake-up.
pub fn prefer_synchronous_wake_up(listener: BorrowedFd<'_>) -> Result<(), Errno> {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: SET_FLAGS takes the flags by value and reads no memory.
    let result = unsafe {
        libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
    };
    if result < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Takes ownership of a descriptor that recvmsg just received with SCM_RIGHTS.
pub fn own_received(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: the kernel installed `fd` in this process while receiving the message, and nothing
    // else in the process refers to it, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

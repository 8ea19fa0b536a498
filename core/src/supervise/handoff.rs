//! Passing the notification listener from the launcher to the supervisor over a socketpair
//! (SCM_RIGHTS).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};

use super::SuperviseError;

/// The two ends of the socket the listener travels over; both close on exec.
#[derive(Debug)]
pub struct HandoffSocket {
    /// The end the launcher sends the listener from.
    pub launcher: OwnedFd,
    /// The end the supervisor receives it on.
    pub supervisor: OwnedFd,
}

impl HandoffSocket {
    pub fn new() -> Result<Self, SuperviseError> {
        let (launcher, supervisor) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|errno| SuperviseError::Handoff(format!("socketpair: {errno}")))?;
        Ok(Self { launcher, supervisor })
    }
}

/// Sends `listener` over `socket`.
pub fn send_listener(socket: BorrowedFd<'_>, listener: BorrowedFd<'_>) -> Result<(), SuperviseError> {
    let fds = [listener.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket.as_raw_fd(), &[IoSlice::new(b"L")], &control, MsgFlags::empty(), None)
        .map_err(|errno| SuperviseError::Handoff(format!("sendmsg: {errno}")))?;
    Ok(())
}

/// Waits for the listener on `socket`. Fails when the launcher closes its end without sending
/// one, which it does when it installs the plain filter instead.
pub fn receive_listener(socket: BorrowedFd<'_>) -> Result<OwnedFd, SuperviseError> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let message = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|errno| SuperviseError::Handoff(format!("recvmsg: {errno}")))?;
    let messages = message.cmsgs().map_err(|errno| SuperviseError::Handoff(format!("control message: {errno}")))?;
    for control in messages {
        if let ControlMessageOwned::ScmRights(fds) = control {
            if let Some(&fd) = fds.first() {
                return Ok(crate::sys::seccomp::own_received(fd));
            }
        }
    }
    Err(SuperviseError::Handoff("the launcher closed the socket without sending a listener".to_owned()))
}

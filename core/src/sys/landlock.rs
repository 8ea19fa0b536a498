//! Landlock ABI detection.

#![allow(unsafe_code)]

use nix::errno::Errno;

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask landlock_create_ruleset for the ABI version.
const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;

/// Returns the Landlock ABI version of the running kernel, or the errno: ENOSYS when the kernel
/// lacks Landlock (or seccomp hides it), EOPNOTSUPP when it is built in but disabled.
pub fn landlock_abi_version() -> Result<i32, Errno> {
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the kernel reads no
    // memory and returns the ABI version or -1 with errno set.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if version < 0 {
        return Err(Errno::last());
    }
    i32::try_from(version).map_err(|_| Errno::EOVERFLOW)
}

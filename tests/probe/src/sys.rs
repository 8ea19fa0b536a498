//! Raw system calls with arguments that do nothing harmful, to observe how a filter answers.

#![allow(unsafe_code)]

/// Calls one of the system calls the launcher's tests expect to be denied.
pub fn harmless_syscall(name: &str) -> Result<(), i32> {
    let result = match name {
        // SAFETY: PTRACE_TRACEME takes no pointers; at worst this process becomes traceable by its parent.
        "ptrace" => unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, std::ptr::null_mut::<libc::c_void>(), 0) },
        // SAFETY: null source, target and type make the kernel reject the call before mounting anything.
        "mount" => libc::c_long::from(unsafe {
            libc::mount(std::ptr::null(), std::ptr::null(), std::ptr::null(), 0, std::ptr::null())
        }),
        // SAFETY: unshare with no flags changes nothing.
        "unshare" => libc::c_long::from(unsafe { libc::unshare(0) }),
        // SAFETY: zero entries and a null params pointer are rejected by the kernel without side effects.
        "io_uring_setup" => unsafe {
            libc::syscall(libc::SYS_io_uring_setup, 0u32, std::ptr::null_mut::<libc::c_void>())
        },
        // SAFETY: an invalid command with a null attribute pointer is rejected without side effects.
        "bpf" => unsafe { libc::syscall(libc::SYS_bpf, -1i32, std::ptr::null_mut::<libc::c_void>(), 0u32) },
        // SAFETY: clone3 with a null argument pointer and size 0 is rejected with EINVAL when allowed.
        "clone3" => unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null_mut::<libc::c_void>(), 0usize) },
        _ => {
            eprintln!("palisade-probe: unsupported system call {name:?}");
            return Err(libc::EINVAL);
        }
    };
    if result < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

/// getpid through the x32 system call ABI: the x86_64 number with bit 30 set.
#[cfg(target_arch = "x86_64")]
pub fn x32_getpid() -> Result<(), i32> {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: getpid takes no arguments and has no side effects in either ABI.
    let result = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
    if result < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(())
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn x32_getpid() -> Result<(), i32> {
    Err(libc::ENOSYS)
}

/// The symbolic name of an errno value, such as `EACCES`.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".into(),
        libc::ENOENT => "ENOENT".into(),
        libc::EACCES => "EACCES".into(),
        libc::EFAULT => "EFAULT".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::ENOSYS => "ENOSYS".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::EHWPOISON => "EHWPOISON".into(),
        libc::ENOTRECOVERABLE => "ENOTRECOVERABLE".into(),
        libc::EROFS => "EROFS".into(),
        libc::EXDEV => "EXDEV".into(),
        other => format!("errno {other}"),
    }
}

//! `palisade-probe ACTION [ARGS]`: attempts one action that a policy may deny and prints `ok` or
//! the errno name on stdout (exit 0 when the action succeeded, 1 when it failed, 2 on bad usage).
//!
//! Actions:
//!   write PATH              create or truncate PATH and write to it
//!   read PATH               open PATH for reading
//!   exec PATH [ARGS...]     execute PATH in place
//!   syscall NAME            ptrace, mount, unshare, io_uring_setup or bpf with harmless arguments
//!   repeat-syscall NAME COUNT
//!                           make the `syscall NAME` call COUNT times; the result is the last one's
//!   wait-then-syscall FILE NAME
//!                           print `ready`, wait until FILE exists, then make the `syscall NAME` call
//!   x32-getpid              getpid through the x32 ABI (x86_64 only)
//!   connect PORT            TCP connect to 127.0.0.1:PORT
//!   thread-then-apply POLICY
//!                           start a thread, apply POLICY from this process, then make the thread
//!                           call ptrace; shows whether the filter reached the earlier thread

mod sys;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(action) = args.first().and_then(|arg| arg.to_str()) else {
        eprintln!("usage: palisade-probe ACTION [ARGS...]");
        return ExitCode::from(2);
    };
    let operand = args.get(1).cloned().unwrap_or_default();

    let result = match action {
        "write" => std::fs::write(&operand, b"probe\n").map_err(errno_of),
        "read" => std::fs::File::open(&operand).map(drop).map_err(errno_of),
        "exec" => Err(errno_of(std::process::Command::new(&operand).args(&args[2..]).exec())),
        "syscall" => sys::harmless_syscall(operand.to_str().unwrap_or_default()),
        "repeat-syscall" => {
            let count: u32 = args.get(2).and_then(|count| count.to_str()?.parse().ok()).unwrap_or(1);
            let name = operand.to_str().unwrap_or_default();
            let mut result = Ok(());
            for _ in 0..count {
                result = sys::harmless_syscall(name);
            }
            result
        }
        "wait-then-syscall" => {
            println!("ready");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            while !std::path::Path::new(&operand).exists() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            sys::harmless_syscall(args.get(2).and_then(|name| name.to_str()).unwrap_or_default())
        }
        "x32-getpid" => sys::x32_getpid(),
        "connect" => {
            let port: u16 = operand.to_str().and_then(|port| port.parse().ok()).unwrap_or(0);
            std::net::TcpStream::connect(("127.0.0.1", port)).map(drop).map_err(errno_of)
        }
        "thread-then-apply" => thread_then_apply(&operand),
        other => {
            eprintln!("palisade-probe: unknown action {other:?}");
            return ExitCode::from(2);
        }
    };

    match result {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errno) => {
            println!("{}", sys::errno_name(errno));
            ExitCode::from(1)
        }
    }
}

fn errno_of(error: std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(0)
}

/// Starts a thread, applies the policy from the main thread, then lets the thread call ptrace.
fn thread_then_apply(policy_path: &OsString) -> Result<(), i32> {
    let (go_sender, go_receiver) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        go_receiver.recv().expect("the main thread signals after applying");
        sys::harmless_syscall("ptrace")
    });

    let loaded = palisade_core::policy::load(std::path::Path::new(policy_path)).map_err(|error| {
        eprintln!("palisade-probe: {error}");
        libc::EINVAL
    })?;
    let prepared = palisade_core::enforce::Prepared::new(&loaded.policy).map_err(|error| {
        eprintln!("palisade-probe: {error}");
        libc::EINVAL
    })?;
    prepared.apply().map_err(|error| {
        eprintln!("palisade-probe: {error}");
        libc::EINVAL
    })?;

    go_sender.send(()).expect("the thread is waiting");
    thread.join().expect("the thread does not panic")
}

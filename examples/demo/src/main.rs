//! `palisade-demo`: a stand-in for an order service. It does the work its policy allows, then
//! tries what an attacker with code execution in it would try, and prints each outcome.
//!
//! Usage: palisade-demo [DATA_DIR] [ALLOWED_PORT]
//! Exit status: 0 when every intrusion attempt was blocked, 1 when any succeeded.

#![forbid(unsafe_code)]

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// The outcome of one attempt.
struct Attempt {
    description: String,
    result: Result<(), String>,
}

fn attempt(description: impl Into<String>, action: impl FnOnce() -> Result<(), String>) -> Attempt {
    Attempt { description: description.into(), result: action() }
}

fn io(result: std::io::Result<impl Sized>) -> Result<(), String> {
    result.map(drop).map_err(|error| error.to_string())
}

fn main() -> std::process::ExitCode {
    let data_dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp/palisade-demo".into()));

    println!("palisade-demo (pid {}): the service's own work", std::process::id());
    let work = [
        attempt("read /etc/hostname", || io(std::fs::read_to_string("/etc/hostname"))),
        attempt(format!("write {}/orders.json", data_dir.display()), || {
            io(std::fs::create_dir_all(&data_dir).and_then(|()| std::fs::write(data_dir.join("orders.json"), "[]")))
        }),
    ];
    for step in &work {
        report("ok", step);
    }

    println!("palisade-demo: what an intruder would try");
    let intrusions = [
        attempt("read /etc/shadow", || io(std::fs::read_to_string("/etc/shadow"))),
        attempt("write /usr/local/bin/backdoor", || io(std::fs::write("/usr/local/bin/backdoor", "#!/bin/sh\n"))),
        attempt("write /etc/cron.d/persist", || io(std::fs::write("/etc/cron.d/persist", "* * * * * root id\n"))),
        attempt("execute /bin/sh", || {
            Err(std::process::Command::new("/bin/sh").arg("-c").arg("id").exec().to_string())
        }),
        attempt("ptrace (PTRACE_TRACEME)", || nix::sys::ptrace::traceme().map_err(|errno| errno.desc().to_owned())),
        attempt("unshare a user namespace", || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|errno| errno.desc().to_owned())
        }),
        // A database port the policy does not list; Landlock refuses before any packet is sent.
        attempt("connect to 127.0.0.1:5432", || io(TcpStream::connect(("127.0.0.1", 5432)))),
        attempt("listen on 0.0.0.0:4444", || io(TcpListener::bind(("0.0.0.0", 4444)))),
    ];
    let mut breached = false;
    for step in &intrusions {
        breached |= step.result.is_ok();
        report("denied", step);
    }

    if breached {
        println!("palisade-demo: some intrusion attempts succeeded: the workload is not confined");
        std::process::ExitCode::FAILURE
    } else {
        println!("palisade-demo: every intrusion attempt was blocked");
        std::process::ExitCode::SUCCESS
    }
}

/// Prints one attempt; `expected` is the outcome a confined workload should see.
fn report(expected: &str, step: &Attempt) {
    let (label, detail) = match &step.result {
        Ok(()) => ("ok", String::new()),
        Err(error) => ("denied", format!(": {error}")),
    };
    let marker = if label == expected { " " } else { "!" };
    println!("{marker} [{label:6}] {}{detail}", step.description);
}

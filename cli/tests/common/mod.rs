//! A test tree, the change kinds applied to it, and helpers to run `palisade`.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

/// Fails the test unless it runs as root, which chown and `security.capability` need.
pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid_line = status.lines().find(|line| line.starts_with("Uid:")).expect("Uid line in /proc/self/status");
    let effective = uid_line.split_whitespace().nth(2).expect("effective uid");
    assert_eq!(effective, "0", "this test changes owners and file capabilities: run it as root");
}

/// Installs the Debian `package` with apt-get when `program` is not on PATH, and fails the test
/// with an install hint when that is not possible.
pub fn require_program(program: &str, package: &str) {
    let found =
        || Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success());
    if found() {
        return;
    }
    for command in
        [format!("apt-get install -y -qq {package}"), format!("apt-get update -qq && apt-get install -y -qq {package}")]
    {
        let _ = Command::new("sh").args(["-c", &command]).env("DEBIAN_FRONTEND", "noninteractive").output();
        if found() {
            return;
        }
    }
    panic!("{program} is missing and `apt-get install {package}` failed: install the Debian package {package}");
}

pub fn palisade() -> Command {
    Command::new(env!("CARGO_BIN_EXE_palisade"))
}

/// Runs a command and returns its output, failing the test when it cannot start.
pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

/// Runs an external tool that must succeed.
pub fn run_ok(program: &str, args: &[&OsStr]) {
    let output = run(Command::new(program).args(args));
    assert!(output.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A non-UTF-8 file name.
pub const BINARY_NAME: &[u8] = b"bin\xff\xfename";
/// A file name with a newline.
pub const NEWLINE_NAME: &str = "name\nwith newline";

/// Size of the file that is rewritten while it is hashed.
pub const BIG_SIZE: usize = 128 << 20;

/// Builds the test tree under `root`: files of several modes, a symbolic link, a FIFO, a unix
/// socket, a file without a capability yet, and names that are not UTF-8 or contain a newline.
pub fn build_tree(root: &Path, with_big_file: bool) {
    for directory in ["etc", "bin", "lib", "var", "odd"] {
        fs::create_dir_all(root.join(directory)).unwrap();
    }
    write_file(&root.join("etc/conf"), b"config-v1\n", 0o644);
    write_file(&root.join("etc/secret"), b"secret\n", 0o600);
    write_file(&root.join("bin/tool"), b"tool binary v1\n", 0o755);
    write_file(&root.join("bin/cap"), b"capability target\n", 0o755);
    write_file(&root.join("lib/data"), &[7u8; 4096], 0o644);
    std::os::unix::fs::symlink("tool", root.join("bin/link")).unwrap();
    run_ok("mkfifo", &[root.join("var/fifo").as_os_str()]);
    // The socket file stays after the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(root.join("var/socket")).unwrap());
    write_file(&root.join("odd").join(OsStr::from_bytes(BINARY_NAME)), b"binary name\n", 0o644);
    write_file(&root.join("odd").join(NEWLINE_NAME), b"newline name\n", 0o644);
    if with_big_file {
        let file = fs::File::create(root.join("lib/big")).unwrap();
        file.set_len(BIG_SIZE as u64).unwrap();
        file.write_all_at(&[1u8; 1 << 20], 0).unwrap();
    }
}

pub fn write_file(path: &Path, content: &[u8], mode: u32) {
    let mut file = fs::File::create(path).unwrap();
    file.write_all(content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The report a verification should produce for one change kind: `(path, change, attributes)`.
pub type Expected = BTreeSet<(String, String, Vec<String>)>;

/// One expected change: path relative to the tree root, change kind, attribute names.
pub type ExpectedChange = (&'static str, &'static str, &'static [&'static str]);

/// One change kind applied to the test tree.
pub struct Mutation {
    pub name: &'static str,
    pub apply: fn(&Path),
    /// The expected report, with paths relative to the tree root.
    pub expected: fn() -> Vec<ExpectedChange>,
}

fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
}

/// Lists every change kind except the one made while hashing, which needs a concurrent writer.
pub fn mutations() -> Vec<Mutation> {
    vec![
        Mutation {
            name: "same_size_content_edit",
            apply: |root| fs::write(root.join("etc/conf"), b"config-v2\n").unwrap(),
            expected: || vec![("etc/conf", "modified", &["ctime", "digest", "mtime"])],
        },
        Mutation {
            name: "same_size_edit_with_mtime_restored",
            apply: |root| {
                let path = root.join("etc/conf");
                let mtime = fs::metadata(&path).unwrap().modified().unwrap();
                fs::write(&path, b"config-v2\n").unwrap();
                set_mtime(&path, mtime);
            },
            expected: || vec![("etc/conf", "modified", &["ctime", "digest"])],
        },
        Mutation {
            name: "truncation",
            apply: |root| fs::File::options().write(true).open(root.join("bin/tool")).unwrap().set_len(4).unwrap(),
            expected: || vec![("bin/tool", "modified", &["ctime", "digest", "mtime", "size"])],
        },
        Mutation {
            name: "append",
            apply: |root| {
                let mut file = fs::File::options().append(true).open(root.join("bin/tool")).unwrap();
                file.write_all(b"appended\n").unwrap();
            },
            expected: || vec![("bin/tool", "modified", &["ctime", "digest", "mtime", "size"])],
        },
        Mutation {
            name: "mode_change",
            apply: |root| fs::set_permissions(root.join("etc/conf"), fs::Permissions::from_mode(0o4777)).unwrap(),
            expected: || vec![("etc/conf", "modified", &["ctime", "mode"])],
        },
        Mutation {
            name: "owner_change",
            apply: |root| std::os::unix::fs::chown(root.join("etc/conf"), Some(1234), Some(5678)).unwrap(),
            expected: || vec![("etc/conf", "modified", &["ctime", "gid", "uid"])],
        },
        Mutation {
            name: "xattr_change",
            apply: |root| {
                run_ok(
                    "setfattr",
                    &[
                        "-n".as_ref(),
                        "user.note".as_ref(),
                        "-v".as_ref(),
                        "changed".as_ref(),
                        root.join("etc/conf").as_os_str(),
                    ],
                )
            },
            expected: || vec![("etc/conf", "modified", &["ctime", "xattr:user.note"])],
        },
        Mutation {
            name: "capability_change",
            apply: |root| run_ok("setcap", &["cap_net_raw+ep".as_ref(), root.join("bin/cap").as_os_str()]),
            expected: || vec![("bin/cap", "modified", &["ctime", "xattr:security.capability"])],
        },
        Mutation {
            name: "symlink_retarget",
            apply: |root| {
                // Like `ln -sfn`: a new link renamed over the old one.
                std::os::unix::fs::symlink("../lib/data", root.join("bin/link.new")).unwrap();
                fs::rename(root.join("bin/link.new"), root.join("bin/link")).unwrap();
            },
            expected: || vec![("bin/link", "modified", &["ctime", "inode", "mtime", "size", "target"])],
        },
        Mutation {
            name: "hard_link_added",
            apply: |root| fs::hard_link(root.join("bin/tool"), root.join("bin/tool-again")).unwrap(),
            expected: || vec![("bin/tool", "modified", &["ctime", "nlink"]), ("bin/tool-again", "added", &[])],
        },
        Mutation {
            name: "atomic_rename_replacement",
            apply: |root| {
                write_file(&root.join("etc/conf.tmp"), b"config-v3\n", 0o644);
                fs::rename(root.join("etc/conf.tmp"), root.join("etc/conf")).unwrap();
            },
            expected: || vec![("etc/conf", "modified", &["ctime", "digest", "inode", "mtime"])],
        },
        Mutation {
            name: "file_to_directory",
            apply: |root| {
                fs::remove_file(root.join("lib/data")).unwrap();
                fs::create_dir(root.join("lib/data")).unwrap();
            },
            expected: || vec![("lib/data", "type_changed", &["type"])],
        },
        Mutation {
            name: "deletion",
            apply: |root| fs::remove_file(root.join("etc/secret")).unwrap(),
            expected: || vec![("etc/secret", "removed", &[])],
        },
        Mutation {
            name: "addition",
            apply: |root| write_file(&root.join("etc/new"), b"new file\n", 0o644),
            expected: || vec![("etc/new", "added", &[])],
        },
        Mutation {
            name: "non_utf8_name_deleted",
            apply: |root| fs::remove_file(root.join("odd").join(OsStr::from_bytes(BINARY_NAME))).unwrap(),
            expected: || vec![("odd/bin%FF%FEname", "removed", &[])],
        },
        Mutation {
            name: "newline_name_edited",
            apply: |root| fs::write(root.join("odd").join(NEWLINE_NAME), b"newline NAME\n").unwrap(),
            expected: || vec![("odd/name%0Awith%20newline", "modified", &["ctime", "digest", "mtime"])],
        },
    ]
}

/// Builds the expected report with absolute, escaped paths.
pub fn expected_report(root: &Path, mutation: &Mutation) -> Expected {
    let root = root.display().to_string();
    (mutation.expected)()
        .into_iter()
        .map(|(path, change, attributes)| {
            let mut attributes: Vec<String> = attributes.iter().map(|name| (*name).to_owned()).collect();
            attributes.sort();
            (format!("{root}/{path}"), change.to_owned(), attributes)
        })
        .collect()
}

/// Records a manifest of `root` with `palisade integrity baseline`.
pub fn baseline(root: &Path, manifest: &Path, extra: &[&str]) {
    let output = run(palisade().args(["integrity", "baseline"]).arg(root).arg("-o").arg(manifest).args(extra));
    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// Runs `palisade integrity verify --format json` and returns the exit code and the report.
pub fn verify(manifest: &Path, extra: &[&str]) -> (i32, Value) {
    let output = run(palisade().args(["integrity", "verify", "--format", "json"]).arg(manifest).args(extra));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "verify printed no JSON ({error}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().expect("verify exited by a signal"), report)
}

/// Extracts the changes of a JSON report as `(path, change, sorted attribute names)`.
pub fn reported(report: &Value) -> Expected {
    report["changes"]
        .as_array()
        .expect("changes array")
        .iter()
        .map(|change| {
            let mut attributes: Vec<String> = change["attributes"]
                .as_array()
                .expect("attributes array")
                .iter()
                .map(|attribute| attribute["name"].as_str().unwrap().to_owned())
                .collect();
            attributes.sort();
            (change["path"].as_str().unwrap().to_owned(), change["change"].as_str().unwrap().to_owned(), attributes)
        })
        .collect()
}

/// Waits long enough that timestamps written next differ from those already recorded, whatever
/// the filesystem's timestamp granularity.
pub fn let_clock_advance() {
    std::thread::sleep(Duration::from_millis(30));
}

/// Creates a fresh directory under /var/tmp, which stays on disk where /tmp is a tmpfs.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("palisade-integrity-").tempdir_in("/var/tmp").unwrap()
}

pub fn path_of(root: &Path, relative: &str) -> PathBuf {
    root.join(relative)
}

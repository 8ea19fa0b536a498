//! The mutation suite: every change kind applied to a fresh tree is reported exactly once, with
//! the right attributes, and an untouched tree reports nothing.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;

#[test]
fn untouched_tree_is_clean() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);

    for flags in [&[][..], &["--fast"][..]] {
        let (code, report) = verify(&manifest, flags);
        assert_eq!(reported(&report), Expected::new(), "verify {flags:?} reported changes");
        assert_eq!(code, 0, "verify {flags:?} exit code");
    }
}

#[test]
fn each_change_kind_is_reported_once() {
    require_root();
    require_program("setfattr", "attr");
    require_program("setcap", "libcap2-bin");
    require_program("mkfifo", "coreutils");

    let mut failures = Vec::new();
    for mutation in mutations() {
        for flags in [&[][..], &["--fast"][..]] {
            let scratch = scratch_dir();
            let root = scratch.path().join("tree");
            build_tree(&root, false);
            let manifest = scratch.path().join("manifest");
            baseline(&root, &manifest, &[]);
            let_clock_advance();

            (mutation.apply)(&root);
            let (code, report) = verify(&manifest, flags);

            let expected = expected_report(&root, &mutation);
            let actual = reported(&report);
            if actual != expected {
                failures.push(format!("{} {flags:?}:\n  expected {expected:?}\n  reported {actual:?}", mutation.name));
            }
            if code != 1 {
                failures.push(format!("{} {flags:?}: exit code {code}, expected 1 (drift)", mutation.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hard_link_names_its_original() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);

    std::fs::hard_link(root.join("bin/tool"), root.join("bin/tool-again")).unwrap();
    let (_, report) = verify(&manifest, &[]);

    let added = report["changes"].as_array().unwrap().iter().find(|change| change["change"] == "added").unwrap();
    assert_eq!(added["hard_link_of"], root.join("bin/tool").display().to_string());
}

#[test]
fn change_while_hashing_is_reported() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, true);
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);

    // Rewrite the large file without changing its size for as long as verification runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (path, stop) = (root.join("lib/big"), stop.clone());
        std::thread::spawn(move || {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            let mut byte = 0u8;
            while !stop.load(Ordering::Relaxed) {
                byte = byte.wrapping_add(1);
                file.write_all_at(&[byte], (BIG_SIZE / 2) as u64).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let (code, report) = verify(&manifest, &[]);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let changes = report["changes"].as_array().unwrap();
    let big = root.join("lib/big").display().to_string();
    let for_big: Vec<_> = changes.iter().filter(|change| change["path"] == big.as_str()).collect();
    assert_eq!(for_big.len(), 1, "changes for lib/big: {changes:?}");
    assert_eq!(for_big[0]["change"], "changed_while_reading");
    assert!(
        !for_big[0]["attributes"].as_array().unwrap().iter().any(|attribute| attribute["name"] == "digest"),
        "a digest read while the file changed is not compared: {:?}",
        for_big[0]
    );
    assert_eq!(changes.len(), 1, "only lib/big changed: {changes:?}");
    assert_eq!(code, 1);
}

#[test]
fn fast_path_reuses_digests_except_high_assurance() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    let high_assurance = root.join("bin").display().to_string();
    baseline(&root, &manifest, &["--high-assurance", &high_assurance]);

    let (code, report) = verify(&manifest, &["--fast"]);

    // bin/ contains tool and cap; the other 5 regular files are trusted from metadata.
    assert_eq!(code, 0);
    assert_eq!(report["files_hashed"], 2);
    assert_eq!(report["digests_reused"], 5);
}

#[test]
fn prefix_reroots_verification() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);

    // A copy of the tree under another directory, as an extracted image would be.
    let prefix = scratch.path().join("image");
    let copy = prefix.join(root.strip_prefix("/").unwrap());
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    run_ok("cp", &["-a".as_ref(), root.as_os_str(), copy.as_os_str()]);
    let prefix_text = prefix.display().to_string();

    let (code, report) = verify(&manifest, &["--root", &prefix_text, "--ignore-identity"]);
    assert_eq!(reported(&report), Expected::new());
    assert_eq!(code, 0);

    std::fs::write(copy.join("etc/conf"), b"config-v2\n").unwrap();
    let (code, report) = verify(&manifest, &["--root", &prefix_text, "--ignore-identity"]);
    let expected: Expected = [(
        root.join("etc/conf").display().to_string(),
        "modified".to_owned(),
        vec!["digest".to_owned(), "mtime".to_owned()],
    )]
    .into();
    assert_eq!(reported(&report), expected);
    assert_eq!(code, 1);
}

#[test]
fn tampered_signed_manifest_is_rejected() {
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let key = scratch.path().join("key");
    let output = run(palisade().args(["integrity", "keygen", "-o"]).arg(&key));
    assert!(output.status.success(), "keygen failed: {}", String::from_utf8_lossy(&output.stderr));
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &["--signing-key", key.to_str().unwrap()]);
    let public_key = format!("{}.pub", key.display());

    let (code, _) = verify(&manifest, &["--public-key", &public_key]);
    assert_eq!(code, 0, "untampered signed manifest");

    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replacen("\t0600\t", "\t0644\t", 1)).unwrap();
    let output = run(palisade().args(["integrity", "verify"]).arg(&manifest).args(["--public-key", &public_key]));
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("signature does not match"));
}

#[test]
fn pseudo_filesystem_is_not_descended() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let proc_dir = root.join("proc");
    std::fs::create_dir(&proc_dir).unwrap();
    run_ok("mount", &["-t".as_ref(), "proc".as_ref(), "proc".as_ref(), proc_dir.as_os_str()]);

    let manifest = scratch.path().join("manifest");
    let output = run(palisade().args(["integrity", "baseline"]).arg(&root).arg("-o").arg(&manifest));
    run_ok("umount", &[proc_dir.as_os_str()]);

    assert!(output.status.success(), "baseline failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&manifest).unwrap();
    let proc_line = text.lines().find(|line| line.starts_with(&format!("{}\t", proc_dir.display()))).unwrap();
    assert!(proc_line.ends_with("\tpseudo:proc"), "{proc_line}");
    assert!(!text.contains(&format!("{}/self", proc_dir.display())), "proc was descended");
}

#[test]
fn verify_emits_telemetry_events() {
    require_root();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);
    let_clock_advance();
    std::fs::set_permissions(root.join("etc/conf"), std::fs::Permissions::from_mode(0o600)).unwrap();

    // Without an OTLP endpoint, events are JSON lines on stderr.
    let output = run(palisade()
        .args(["integrity", "verify", "--events"])
        .arg(&manifest)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"));
    let events: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stderr).lines().filter_map(|line| serde_json::from_str(line).ok()).collect();

    let changed: Vec<_> = events.iter().filter(|event| event["event_name"] == "palisade.integrity.changed").collect();
    assert_eq!(changed.len(), 1, "changed events: {events:?}");
    let attributes = &changed[0]["attributes"];
    assert_eq!(attributes["file.path"], root.join("etc/conf").display().to_string());
    assert_eq!(attributes["palisade.integrity.change"], "modified");
    assert_eq!(attributes["palisade.integrity.attributes"], serde_json::json!(["mode", "ctime"]));
    assert_eq!(attributes["palisade.integrity.old_values"][0], "0644");
    assert_eq!(attributes["palisade.integrity.new_values"][0], "0600");

    let verified: Vec<_> = events.iter().filter(|event| event["event_name"] == "palisade.integrity.verified").collect();
    assert_eq!(verified.len(), 1, "verified events: {events:?}");
    assert_eq!(verified[0]["attributes"]["palisade.integrity.changes"], 1);
    assert_eq!(output.status.code(), Some(1));
}

/// Runs `palisade` as the unprivileged user nobody, without capabilities.
fn palisade_as_nobody() -> std::process::Command {
    let mut command = std::process::Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]);
    command.arg(env!("CARGO_BIN_EXE_palisade"));
    command
}

#[test]
fn unreadable_entries_are_errors_not_removals() {
    require_root();
    require_program("setpriv", "util-linux");
    let scratch = scratch_dir();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(root.join("private")).unwrap();
    write_file(&root.join("private/inner"), b"inner\n", 0o644);
    std::fs::set_permissions(root.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let manifest = scratch.path().join("manifest");
    baseline(&root, &manifest, &[]);
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();

    // etc/secret (0600) cannot be opened and private/ (0700) cannot be listed by nobody.
    let output = run(palisade_as_nobody().args(["integrity", "verify", "--format", "json"]).arg(&manifest));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("no JSON report ({error}): {}", String::from_utf8_lossy(&output.stderr)));

    let errors: BTreeSet<String> =
        report["errors"].as_array().unwrap().iter().map(|error| error["path"].as_str().unwrap().to_owned()).collect();
    let expected_errors: BTreeSet<String> =
        [root.join("etc/secret"), root.join("private")].iter().map(|path| path.display().to_string()).collect();
    assert_eq!(errors, expected_errors);
    assert_eq!(reported(&report), Expected::new(), "unreadable entries must not be reported as changes");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn missing_root_is_an_error() {
    let scratch = scratch_dir();
    let missing = scratch.path().join("no-such-root");
    let manifest = scratch.path().join("manifest");

    for subcommand in [&["baseline", "-o", manifest.to_str().unwrap()][..], &["watch"][..]] {
        let output = run(palisade().arg("integrity").args(subcommand).arg(&missing));

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{subcommand:?}: {stderr}");
        assert!(stderr.contains("no-such-root"), "{subcommand:?}: {stderr}");
        assert!(!manifest.exists(), "{subcommand:?} wrote a manifest");
    }
}

#[test]
fn symlink_root_is_an_error() {
    let scratch = scratch_dir();
    let target = scratch.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let link = scratch.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let manifest = scratch.path().join("manifest");

    let output = run(palisade().args(["integrity", "baseline", "-o"]).arg(&manifest).arg(&link));

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!manifest.exists());
}

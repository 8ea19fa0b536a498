//! The mutation suite run through AIDE as well: for every change kind, Palisade and AIDE (with an
//! equivalent rule set and a JSON report) must agree on every change AIDE can see. The
//! differences that remain by design are normalised in `normalise_aide` and listed in
//! docs/integrity.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Per path: the change (`added`, `removed`, `changed`) and the attributes that differ.
type Normalised = BTreeMap<String, (String, BTreeSet<String>)>;

/// Installs AIDE with apt-get when it is missing, and fails the test when that is not possible.
fn require_aide() {
    require_program("aide", "aide");
}

/// Writes an AIDE configuration whose rule records what Palisade records: type, permissions, owner,
/// group, size, mtime, ctime, inode, link count, link target, extended attributes, capabilities
/// and a SHA-256 content digest.
fn write_aide_config(directory: &Path, tree: &Path) -> std::path::PathBuf {
    let config = directory.join("aide.conf");
    let text = format!(
        "database_in=file:{dir}/aide.db\n\
         database_out=file:{dir}/aide.db.new\n\
         gzip_dbout=no\n\
         report_format=json\n\
         report_url=stdout\n\
         Palisade = ftype+p+u+g+s+m+c+i+n+l+xattrs+caps+sha256\n\
         {tree} Palisade\n",
        dir = directory.display(),
        tree = tree.display()
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn run_aide(config: &Path, mode: &str) -> Vec<u8> {
    let output = run(Command::new("aide").arg(format!("--config={}", config.display())).arg(mode));
    // --check exits with a bit mask of added (1), removed (2) and changed (4) entries; 14 and up
    // are errors.
    let code = output.status.code().expect("aide exited by a signal");
    assert!(code < 14, "aide {mode} failed with exit code {code}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// Parses AIDE's JSON report. AIDE writes file names as raw bytes, which may not be UTF-8, so
/// every byte above 0x7f is first turned into a `\u00XX` escape and mapped back to a byte here.
fn parse_aide_report(bytes: &[u8]) -> Value {
    let mut text = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii() {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("\\u00{byte:02x}"));
        }
    }
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("aide printed invalid JSON ({error}): {text}"))
}

/// Converts a path from AIDE's report to Palisade's escaped form.
fn aide_path(text: &str) -> String {
    let bytes: Vec<u8> = text.chars().map(|c| u8::try_from(u32::from(c)).expect("byte-mapped character")).collect();
    palisade_core::integrity::escape(&bytes)
}

/// Converts AIDE's report to Palisade's terms, without the differences that are by design. AIDE
/// reports a directory's size, times and link count when entries are added to or removed from
/// it, where Palisade reports those entries. AIDE also lists every attribute of an entry whose
/// type changed, where Palisade reports the type change alone.
fn normalise_aide(report: &Value) -> Normalised {
    let mut normalised = Normalised::new();
    for (section, change) in [("added", "added"), ("removed", "removed")] {
        if let Some(entries) = report[section].as_object() {
            for path in entries.keys() {
                normalised.insert(aide_path(path), (change.to_owned(), BTreeSet::new()));
            }
        }
    }

    let Some(changed) = report["changed"].as_object() else { return normalised };
    for (path, summary) in changed {
        let is_directory = summary.as_str().unwrap_or_default().starts_with('d');
        let details = report["details"][path].as_object().cloned().unwrap_or_default();
        let mut attributes: BTreeSet<String> = details
            .keys()
            .map(|name| match name.as_str() {
                "perm" => "mode",
                "uid" => "uid",
                "gid" => "gid",
                "size" => "size",
                "modify_time" => "mtime",
                "change_time" => "ctime",
                "inode" => "inode",
                "link_count" => "nlink",
                "link_name" => "target",
                "sha256" => "digest",
                "xattrs" | "capabilities" | "caps" => "xattrs",
                "file_type" => "type",
                other => panic!("unmapped AIDE attribute {other:?} in {report}"),
            })
            .map(str::to_owned)
            .collect();
        if attributes.contains("type") {
            attributes = BTreeSet::from(["type".to_owned()]);
        } else if is_directory {
            attributes.retain(|name| !matches!(name.as_str(), "size" | "mtime" | "ctime" | "nlink"));
        }
        if !attributes.is_empty() {
            normalised.insert(aide_path(path), ("changed".to_owned(), attributes));
        }
    }
    normalised
}

/// Palisade's report in the same terms: every extended attribute counts as `xattrs`.
fn normalise_palisade(report: &Expected) -> Normalised {
    report
        .iter()
        .map(|(path, change, attributes)| {
            let change = match change.as_str() {
                "modified" | "type_changed" => "changed",
                other => other,
            };
            let attributes = attributes
                .iter()
                .map(|name| if name.starts_with("xattr:") { "xattrs".to_owned() } else { name.clone() })
                .collect();
            (path.clone(), (change.to_owned(), attributes))
        })
        .collect()
}

#[test]
fn aide_agrees_on_every_change_kind() {
    require_root();
    require_aide();
    require_program("setfattr", "attr");
    require_program("setcap", "libcap2-bin");

    let mut disagreements = Vec::new();
    for mutation in mutations() {
        let scratch = scratch_dir();
        let root = scratch.path().join("tree");
        build_tree(&root, false);
        let manifest = scratch.path().join("manifest");
        let config = write_aide_config(scratch.path(), &root);

        baseline(&root, &manifest, &[]);
        run_aide(&config, "--init");
        std::fs::rename(scratch.path().join("aide.db.new"), scratch.path().join("aide.db")).unwrap();
        // AIDE records times in whole seconds.
        std::thread::sleep(Duration::from_millis(1100));

        (mutation.apply)(&root);
        let (_, palisade_report) = verify(&manifest, &[]);
        let aide_report = parse_aide_report(&run_aide(&config, "--check"));

        let palisade = normalise_palisade(&reported(&palisade_report));
        let aide = normalise_aide(&aide_report);
        if aide.is_empty() {
            disagreements.push(format!("{}: AIDE reported nothing, so the comparison checks nothing", mutation.name));
        }
        if palisade != aide {
            disagreements.push(format!("{}:\n  palisade {palisade:?}\n  aide     {aide:?}", mutation.name));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn aide_and_palisade_agree_on_untouched_tree() {
    require_root();
    require_aide();
    let scratch = scratch_dir();
    let root = scratch.path().join("tree");
    build_tree(&root, false);
    let manifest = scratch.path().join("manifest");
    let config = write_aide_config(scratch.path(), &root);
    baseline(&root, &manifest, &[]);
    run_aide(&config, "--init");
    std::fs::rename(scratch.path().join("aide.db.new"), scratch.path().join("aide.db")).unwrap();

    let (code, palisade_report) = verify(&manifest, &[]);
    let aide = normalise_aide(&parse_aide_report(&run_aide(&config, "--check")));

    assert_eq!(code, 0);
    assert_eq!(normalise_palisade(&reported(&palisade_report)), Normalised::new());
    assert_eq!(aide, Normalised::new());
}

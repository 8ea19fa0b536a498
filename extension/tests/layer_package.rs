//! The layer package: the zip that layers/build.sh writes, the binaries' portability to Amazon
//! Linux 2 (glibc 2.26) and 2023, the shipped policies, and the SAM template.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Newest glibc symbol version that Amazon Linux 2 provides.
const MAX_GLIBC: (u32, u32) = (2, 26);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn require_tool(tool: &str, install: &str) {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).status().is_ok_and(|status| status.success());
    assert!(found, "{tool} is required by this test; install it ({install})");
}

/// Builds the layer into `output` with the target directory of this test and extracts it.
fn build_and_extract(output: &Path) -> PathBuf {
    let target_dir = Path::new(support::EXTENSION).parent().unwrap().parent().unwrap();
    let build = Command::new(repository().join("layers/build.sh"))
        .arg(output.join("dist"))
        .env("CARGO_TARGET_DIR", target_dir)
        .output()
        .expect("run layers/build.sh");
    assert!(build.status.success(), "layers/build.sh failed:\n{}", String::from_utf8_lossy(&build.stderr));

    let zip = output.join("dist/palisade-layer-x86_64.zip");
    let layer = output.join("layer");
    let extract = Command::new(support::python())
        .args([
            "-c",
            "import os, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as archive:\n\
             \x20   for info in archive.infolist():\n\
             \x20       archive.extract(info, sys.argv[2])\n\
             \x20       os.chmod(os.path.join(sys.argv[2], info.filename), (info.external_attr >> 16) & 0o7777)\n",
        ])
        .arg(&zip)
        .arg(&layer)
        .status()
        .unwrap();
    assert!(extract.success());
    layer
}

/// Whether the ELF file has no program interpreter, so the kernel runs it without a dynamic loader.
fn is_static(binary: &Path) -> bool {
    let output = Command::new("readelf").args(["-lW"]).arg(binary).output().expect("run readelf");
    assert!(output.status.success(), "readelf failed on {}", binary.display());
    !String::from_utf8_lossy(&output.stdout).contains("Requesting program interpreter")
}

/// The newest `GLIBC_x.y` version among the binary's dynamic symbols.
fn newest_glibc(binary: &Path) -> Option<(u32, u32)> {
    let output = Command::new("objdump").arg("-T").arg(binary).output().expect("run objdump");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .max()
}

#[test]
fn layer_binaries_run_on_amazon_linux() {
    require_tool("readelf", "apt-get install binutils");
    require_tool("objdump", "apt-get install binutils");
    let work = tempfile::tempdir().unwrap();

    let layer = build_and_extract(work.path());

    for (path, mode) in
        [("extensions/palisade-extension", 0o755), ("palisade-wrap", 0o755), ("palisade/policy.yaml", 0o644)]
    {
        let metadata = std::fs::metadata(layer.join(path)).unwrap_or_else(|_| panic!("{path} missing from the layer"));
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o777, mode, "{path}");
    }
    for binary in ["extensions/palisade-extension", "palisade-wrap"] {
        let binary = layer.join(binary);
        if is_static(&binary) {
            continue;
        }
        let newest = newest_glibc(&binary);
        assert!(newest.is_none_or(|newest| newest <= MAX_GLIBC), "{} needs glibc {newest:?}", binary.display());
    }
    let version = Command::new(layer.join("palisade-wrap")).arg("--version").output().unwrap();
    assert!(version.status.success(), "the static palisade-wrap does not run");
    if musl_installed() {
        assert!(
            !links_glibc(&layer.join("palisade-wrap")),
            "palisade-wrap is a glibc build although musl is installed"
        );
    }
}

/// Returns whether layers/build.sh can build palisade-wrap against musl here: the Rust target
/// and musl-gcc are installed.
fn musl_installed() -> bool {
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let targets = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let has_target =
        targets.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).lines().any(|line| line == target));
    has_target && Command::new("sh").args(["-c", "command -v musl-gcc"]).status().is_ok_and(|status| status.success())
}

/// Returns whether a static binary contains glibc, whose tunable names are compiled into every
/// static glibc program.
fn links_glibc(binary: &Path) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    bytes.windows(b"glibc.malloc.".len()).any(|window| window == b"glibc.malloc.")
}

#[test]
fn layer_launcher_confines_a_shell() {
    let work = tempfile::tempdir().unwrap();
    let layer = build_and_extract(work.path());
    let allowed = work.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let shell = std::fs::canonicalize("/bin/sh").unwrap();
    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: palisade.dev/v1alpha1\n\
             kind: WorkloadPolicy\n\
             metadata: {{name: layer-launcher}}\n\
             spec:\n\
             \x20 process: {{execute: [{shell}, /lib64/ld-linux-x86-64.so.2]}}\n\
             \x20 filesystem: {{read: [/usr/lib, /usr/lib64, /etc/ld.so.cache], write: [{allowed}]}}\n\
             \x20 syscalls: {{profiles: [base]}}\n",
            shell = shell.display(),
            allowed = allowed.display(),
        ),
    )
    .unwrap();
    let script = format!("echo in > {0}/in; echo out > {1}/out", allowed.display(), work.path().display());

    let run = Command::new(layer.join("palisade-wrap"))
        .arg("--policy")
        .arg(&policy)
        .arg("--")
        .arg(&shell)
        .args(["-c", &script])
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("\"event_name\":\"palisade.policy.applied\""), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(!run.status.success());
    assert!(allowed.join("in").exists());
    assert!(!work.path().join("out").exists());
}

#[test]
fn glibc_check_reads_versions() {
    // The check itself must see versions: the system's dynamic python3 needs some glibc.
    let newest = newest_glibc(&support::python());

    assert!(newest.is_some_and(|newest| newest >= (2, 2)), "{newest:?}");
    assert!(!is_static(&support::python()));
}

#[test]
fn shipped_policies_are_valid() {
    for path in ["layers/policy.yaml", "sam-templates/example-function/palisade.yaml"] {
        let loaded = palisade_core::policy::load(&repository().join(path));

        assert!(loaded.is_ok(), "{path}: {}", loaded.unwrap_err());
    }
}

#[test]
fn sam_template_passes_cfn_lint() {
    require_tool("cfn-lint", "python3 -m pip install cfn-lint");

    let output = Command::new("cfn-lint").arg(repository().join("sam-templates/template.yaml")).output().unwrap();

    assert!(
        output.status.success(),
        "cfn-lint reported problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

//! The init integrity check: `/var/task`, `/opt` and `/opt/extensions` against a manifest
//! shipped in the function package or the layer, and the extensions that the manifest lacks.

use std::path::{Path, PathBuf};

use palisade_core::integrity::{self, Manifest, ScanOptions, VerifyOptions};
use palisade_core::telemetry::{attributes, names, Event, Severity};

use crate::error::ConfigError;

/// Where a manifest is looked for when `PALISADE_MANIFEST` is unset: the function package, then
/// the layer.
pub const DEFAULT_MANIFEST_PATHS: [&str; 2] = ["/var/task/palisade.manifest", "/opt/palisade/manifest"];

/// The extensions directory, below the prefix.
const EXTENSIONS_DIR: &str = "/opt/extensions";

/// Most changes reported one by one; the verified event counts them all.
const MAX_CHANGE_EVENTS: usize = 100;

/// A manifest ready to verify, read at init so that a broken one is a configuration error.
#[derive(Debug)]
pub struct Check {
    manifest: Option<(PathBuf, Manifest)>,
    /// Prefix under which the manifest's paths are found (tests use a copy of the file tree).
    prefix: Option<PathBuf>,
    /// This extension's own file name, never reported as unknown.
    own_name: String,
}

impl Check {
    /// Reads the manifest at `explicit`, or at the first default path that exists under `prefix`.
    /// A missing default manifest is not an error: the check then only lists the extensions.
    pub fn load(explicit: Option<&Path>, prefix: Option<&Path>, own_name: &str) -> Result<Self, ConfigError> {
        let path = match explicit {
            Some(path) => Some(path.to_owned()),
            None => DEFAULT_MANIFEST_PATHS.iter().map(|path| under(prefix, Path::new(path))).find(|path| path.exists()),
        };
        let manifest = match path {
            Some(path) => {
                let bytes = std::fs::read(&path).map_err(|error| ConfigError::Manifest {
                    path: path.clone(),
                    source: integrity::IntegrityError::ReadManifest { path: path.clone(), source: error },
                })?;
                let manifest = Manifest::decode(&bytes, None)
                    .map_err(|source| ConfigError::Manifest { path: path.clone(), source })?;
                Some((path, manifest))
            }
            None => None,
        };
        Ok(Self { manifest, prefix: prefix.map(Path::to_owned), own_name: own_name.to_owned() })
    }

    /// Verifies the tree and lists unknown extensions, as events.
    pub fn run(&self) -> Vec<Event> {
        let mut events = Vec::new();
        let known: Vec<PathBuf> = match &self.manifest {
            Some((path, manifest)) => {
                events.extend(self.verify(path, manifest));
                manifest.entries.iter().map(|entry| entry.path.clone()).collect()
            }
            None => {
                events.push(
                    Event::new(names::INTEGRITY_VERIFIED, Severity::Warn)
                        .with_body("no integrity manifest; set PALISADE_MANIFEST or ship palisade.manifest")
                        .with(attributes::REASON, "manifest not found"),
                );
                Vec::new()
            }
        };
        events.extend(self.unknown_extensions(&known));
        events
    }

    fn verify(&self, path: &Path, manifest: &Manifest) -> Vec<Event> {
        let options = VerifyOptions {
            scan: ScanOptions { prefix: self.prefix.clone(), ..ScanOptions::default() },
            metadata_fast_path: false,
            // Layers and packages are extracted at deploy time, so inodes and ctimes always differ.
            ignore_identity: true,
        };
        match integrity::verify(manifest, &options) {
            Ok(report) => {
                let mut events = vec![integrity::verified_event(&report, path, self.prefix.as_deref())];
                events.extend(
                    report.changes.iter().take(MAX_CHANGE_EVENTS).map(|change| integrity::change_event(change, None)),
                );
                events
            }
            Err(error) => vec![Event::new(names::INTEGRITY_VERIFIED, Severity::Error)
                .with_body(format!("integrity verification failed: {error}"))
                .with(attributes::INTEGRITY_MANIFEST, path.display().to_string())
                .with(attributes::ERROR_TYPE, "verify_failed")
                .with(attributes::REASON, error.to_string())],
        }
    }

    fn unknown_extensions(&self, known: &[PathBuf]) -> Vec<Event> {
        let directory = under(self.prefix.as_deref(), Path::new(EXTENSIONS_DIR));
        let Ok(entries) = std::fs::read_dir(&directory) else { return Vec::new() };
        let mut names: Vec<String> =
            entries.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
        names.sort();

        names
            .into_iter()
            .filter(|name| *name != self.own_name)
            .filter(|name| !known.iter().any(|path| *path == Path::new(EXTENSIONS_DIR).join(name)))
            .map(|name| {
                let path = Path::new(EXTENSIONS_DIR).join(&name);
                Event::new(names::INTEGRITY_CHANGED, Severity::Warn)
                    .with_body(format!("unknown extension {}", path.display()))
                    .with(attributes::FILE_PATH, path.display().to_string())
                    .with(attributes::INTEGRITY_CHANGE, "added")
                    .with(attributes::REASON, "extension not in the integrity manifest")
            })
            .collect()
    }
}

fn under(prefix: Option<&Path>, path: &Path) -> PathBuf {
    match prefix {
        Some(prefix) => prefix.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

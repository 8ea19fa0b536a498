//! The policy in force, swapped atomically when the policy file changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::egress::Engine;
use crate::policy::{self, PolicyError};
use crate::telemetry::{attributes, names, Event, Severity, Telemetry};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file parsed and its hash differs, so the new engine is in force.
    Replaced { hash: String },
    /// The file parsed to the policy already in force.
    Unchanged,
}

/// The file attributes compared to notice a change without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    length: u64,
    inode: u64,
}

impl FileStamp {
    fn read(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;

        let metadata = std::fs::metadata(path).ok()?;
        Some(Self { modified: metadata.modified().ok(), length: metadata.len(), inode: metadata.ino() })
    }
}

/// The engine of the policy in force. Readers take a snapshot with [`PolicyHandle::engine`];
/// a reload swaps in a new engine without blocking them, and connections that already took a
/// snapshot finish under it.
#[derive(Debug)]
pub struct PolicyHandle {
    path: Option<PathBuf>,
    engine: ArcSwap<Engine>,
    stamp: Mutex<Option<FileStamp>>,
    telemetry: Telemetry,
}

impl PolicyHandle {
    /// Loads the policy file and compiles its egress rules.
    pub fn load(path: &Path, telemetry: Telemetry) -> Result<Self, PolicyError> {
        let stamp = FileStamp::read(path);
        let loaded = policy::load(path)?;
        Ok(Self {
            path: Some(path.to_owned()),
            engine: ArcSwap::from_pointee(Engine::new(&loaded)),
            stamp: Mutex::new(stamp),
            telemetry,
        })
    }

    /// Wraps an engine that no file backs; [`PolicyHandle::reload`] keeps it.
    pub fn fixed(engine: Engine, telemetry: Telemetry) -> Self {
        Self { path: None, engine: ArcSwap::from_pointee(engine), stamp: Mutex::new(None), telemetry }
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// Re-reads the policy file and swaps the engine when the policy changed. An invalid file
    /// leaves the engine in force and returns the reason.
    pub fn reload(&self) -> Result<ReloadOutcome, PolicyError> {
        let Some(path) = &self.path else {
            return Ok(ReloadOutcome::Unchanged);
        };
        *self.stamp.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = FileStamp::read(path);

        let loaded = match policy::load(path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(%error, path = %path.display(), "invalid policy file, the previous policy stays in force");
                let event = Event::new(names::POLICY_FAILED, Severity::Warn)
                    .with_body(format!("policy reload failed, the previous policy stays in force: {error}"))
                    .with(attributes::POLICY_PATH, path.display().to_string())
                    .with(attributes::POLICY_HASH, self.engine().policy_hash())
                    .with(attributes::ERROR_TYPE, "invalid_policy");
                self.telemetry.emit(event);
                return Err(error);
            }
        };
        if loaded.hash == self.engine().policy_hash() {
            return Ok(ReloadOutcome::Unchanged);
        }

        let engine = Engine::new(&loaded);
        let event = Event::new(names::POLICY_RELOADED, Severity::Info)
            .with_body("egress policy reloaded")
            .with(attributes::POLICY_NAME, engine.policy_name())
            .with(attributes::POLICY_HASH, loaded.hash.clone())
            .with(attributes::POLICY_PATH, path.display().to_string());
        tracing::info!(hash = %loaded.hash, rules = engine.rule_count(), path = %path.display(), "egress policy reloaded");
        self.engine.store(Arc::new(engine));
        self.telemetry.emit(event);
        Ok(ReloadOutcome::Replaced { hash: loaded.hash })
    }

    /// Whether the file's modification time, length or inode differ from the last read.
    fn file_changed(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let current = FileStamp::read(path);
        *self.stamp.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) != current
    }

    /// Polls the policy file every `interval` and reloads it when it changed. Runs until the
    /// handle has no other owner.
    pub async fn watch(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            if self.file_changed() {
                // An invalid file was logged and reported by `reload`.
                let _ = self.reload();
            }
        }
    }
}

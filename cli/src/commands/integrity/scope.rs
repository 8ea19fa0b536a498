//! The roots, exclusions and algorithm shared by `baseline` and `watch`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use palisade_core::integrity::{DigestAlgorithm, Scope};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Algorithm {
    Blake3,
    Sha256,
}

impl From<Algorithm> for DigestAlgorithm {
    fn from(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Blake3 => Self::Blake3,
            Algorithm::Sha256 => Self::Sha256,
        }
    }
}

#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Absolute roots to record. Without roots, the policy's integrity paths are used.
    #[arg(value_name = "ROOT")]
    pub roots: Vec<PathBuf>,
    /// A workload policy whose `integrity` section gives roots, excludes, high-assurance roots
    /// and the algorithm; roots and flags given here are added to it.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A glob of absolute paths to leave out (repeatable); a matching directory is not descended.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// A root whose files are always re-hashed on verification, even with --fast (repeatable).
    #[arg(long, value_name = "PATH")]
    pub high_assurance: Vec<PathBuf>,
    /// The content digest [default: the policy's algorithm, else blake3].
    #[arg(long, value_enum)]
    pub algorithm: Option<Algorithm>,
    /// A directory that stands for / (an extracted image, /proc/PID/root); paths are recorded as
    /// seen inside it.
    #[arg(long, value_name = "PREFIX")]
    pub root: Option<PathBuf>,
    /// Descend pseudo-filesystems (proc, sysfs, devtmpfs, cgroup, ...) instead of recording only
    /// their mount points.
    #[arg(long)]
    pub descend_pseudo: bool,
}

impl ScopeArgs {
    /// Combines the policy's integrity section with the command-line roots and flags.
    pub fn resolve(&self) -> anyhow::Result<(Scope, DigestAlgorithm)> {
        let mut roots = self.roots.clone();
        let mut exclude = self.exclude.clone();
        let mut high_assurance = self.high_assurance.clone();
        let mut algorithm = self.algorithm.map(DigestAlgorithm::from);

        if let Some(path) = &self.policy {
            let loaded = palisade_core::policy::load(path)?;
            let rules = &loaded.policy.spec.integrity;
            roots.extend(rules.paths.iter().map(|path| path.as_path().to_owned()));
            exclude.extend(rules.exclude.iter().map(|glob| glob.as_str().to_owned()));
            high_assurance.extend(rules.high_assurance.iter().map(|path| path.as_path().to_owned()));
            algorithm = algorithm.or(Some(rules.algorithm));
        }
        if roots.is_empty() {
            anyhow::bail!("no roots given: name at least one absolute ROOT, or pass --policy with integrity paths");
        }

        let scope = Scope::new(roots, exclude, high_assurance)?;
        self.check_roots_exist(&scope)?;
        Ok((scope, algorithm.unwrap_or_default()))
    }

    /// Rejects a root that does not exist (under `--root`, when given), or that is a symbolic
    /// link: recording or watching it would silently cover nothing, because links are recorded
    /// without being followed.
    fn check_roots_exist(&self, scope: &Scope) -> anyhow::Result<()> {
        for root in &scope.roots {
            let physical = match &self.root {
                Some(prefix) => prefix.join(root.strip_prefix("/").unwrap_or(root)),
                None => root.clone(),
            };
            let metadata = match std::fs::symlink_metadata(&physical) {
                Ok(metadata) => metadata,
                Err(error) => anyhow::bail!(
                    "root {}: {error}; check the path{}",
                    physical.display(),
                    if self.root.is_some() { " and --root" } else { "" }
                ),
            };
            if metadata.file_type().is_symlink() {
                let target = std::fs::read_link(&physical).unwrap_or_default();
                anyhow::bail!(
                    "root {} is a symbolic link to {}; links are recorded without being followed, so give the directory it points to as the root",
                    physical.display(),
                    target.display()
                );
            }
        }
        Ok(())
    }
}

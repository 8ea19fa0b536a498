//! The coverage of a manifest: roots, exclude globs and high-assurance roots.

use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::IntegrityError;
use crate::policy::IntegrityRules;

/// The roots a manifest records, the globs it leaves out, and the roots whose digests are never
/// reused from metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Absolute, normalised roots; a root inside another root is dropped.
    pub roots: Vec<PathBuf>,
    /// Globs matched against absolute paths; a matching directory is not descended.
    pub exclude: Vec<String>,
    /// Absolute roots that are always re-hashed on verification.
    pub high_assurance: Vec<PathBuf>,
}

impl Scope {
    /// Validates and normalises the roots and compiles the globs once to check them.
    pub fn new(
        roots: impl IntoIterator<Item = PathBuf>,
        exclude: impl IntoIterator<Item = String>,
        high_assurance: impl IntoIterator<Item = PathBuf>,
    ) -> Result<Self, IntegrityError> {
        let mut roots = roots.into_iter().map(|root| normalise(&root)).collect::<Result<Vec<_>, _>>()?;
        roots.sort();
        roots.dedup();
        let nested: Vec<PathBuf> = roots
            .iter()
            .filter(|root| roots.iter().any(|other| other != *root && root.starts_with(other)))
            .cloned()
            .collect();
        roots.retain(|root| !nested.contains(root));

        let high_assurance = high_assurance.into_iter().map(|root| normalise(&root)).collect::<Result<_, _>>()?;
        let scope = Self { roots, exclude: exclude.into_iter().collect(), high_assurance };
        scope.exclude_set()?;
        Ok(scope)
    }

    /// Builds the scope from the `integrity` section of a workload policy.
    pub fn from_policy(rules: &IntegrityRules) -> Result<Self, IntegrityError> {
        Self::new(
            rules.paths.iter().map(|path| path.as_path().to_owned()),
            rules.exclude.iter().map(|glob| glob.as_str().to_owned()),
            rules.high_assurance.iter().map(|path| path.as_path().to_owned()),
        )
    }

    pub(crate) fn exclude_set(&self) -> Result<GlobSet, IntegrityError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &self.exclude {
            let glob = GlobBuilder::new(pattern).literal_separator(true).build().map_err(|error| {
                IntegrityError::InvalidGlob { pattern: pattern.clone(), reason: error.kind().to_string() }
            })?;
            builder.add(glob);
        }
        builder.build().map_err(|error| IntegrityError::InvalidGlob {
            pattern: self.exclude.join(", "),
            reason: error.to_string(),
        })
    }

    /// Returns whether `path` lies in a high-assurance root.
    pub fn is_high_assurance(&self, path: &Path) -> bool {
        self.high_assurance.iter().any(|root| path.starts_with(root))
    }

    /// Returns whether `path` lies in one of the roots.
    pub fn contains(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root))
    }
}

/// Makes `path` absolute and normal: no `.`, no `..`, no trailing or doubled slashes.
fn normalise(path: &Path) -> Result<PathBuf, IntegrityError> {
    if !path.is_absolute() {
        return Err(IntegrityError::InvalidRoot { path: path.to_owned() });
    }
    let mut normal = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(part) => normal.push(part),
            Component::ParentDir => return Err(IntegrityError::InvalidRoot { path: path.to_owned() }),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(normal)
}

/// Maps a path of the checked namespace to the path that reaches it through `prefix`.
// NOTE: the kernel follows a symbolic link among the root's own components inside the prefix,
// so an absolute link target escapes the prefix. openat2 with RESOLVE_IN_ROOT would prevent that.
pub(crate) fn under_prefix(prefix: Option<&Path>, path: &Path) -> PathBuf {
    match prefix {
        Some(prefix) => prefix.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_drops_nested_roots() {
        let scope =
            Scope::new([PathBuf::from("/usr/bin"), PathBuf::from("/usr/"), PathBuf::from("/etc")], [], []).unwrap();

        assert_eq!(scope.roots, [PathBuf::from("/etc"), PathBuf::from("/usr")]);
    }

    #[test]
    fn scope_rejects_relative_roots() {
        assert!(Scope::new([PathBuf::from("usr")], [], []).is_err());
        assert!(Scope::new([PathBuf::from("/usr/../etc")], [], []).is_err());
    }

    #[test]
    fn scope_rejects_invalid_globs() {
        let error = Scope::new([PathBuf::from("/usr")], ["[".to_owned()], []).unwrap_err();
        assert!(error.to_string().contains("invalid exclude glob"), "{error}");
    }

    #[test]
    fn prefix_reroots_paths() {
        assert_eq!(
            under_prefix(Some(Path::new("/proc/7/root")), Path::new("/usr/bin")),
            Path::new("/proc/7/root/usr/bin")
        );
        assert_eq!(under_prefix(None, Path::new("/usr/bin")), Path::new("/usr/bin"));
    }
}

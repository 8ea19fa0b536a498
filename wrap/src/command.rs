//! Resolution of the command to execute, the way a shell does it, so that a missing or
//! non-executable command is reported before anything is enforced.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use crate::error::WrapError;

/// PATH used when the environment has none, as glibc's execvp does.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Finds the file `program` names: itself when it contains a slash, else the first executable
/// match in PATH.
pub fn resolve(program: &OsStr) -> Result<PathBuf, WrapError> {
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        check_executable(&path)?;
        return Ok(path);
    }

    let search_path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    let mut first_not_executable = None;
    for directory in std::env::split_paths(&search_path) {
        let directory = if directory.as_os_str().is_empty() { PathBuf::from(".") } else { directory };
        let candidate = directory.join(program);
        if !candidate.exists() {
            continue;
        }
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(error) => {
                first_not_executable.get_or_insert(error);
            }
        }
    }
    Err(first_not_executable.unwrap_or_else(|| WrapError::NotFound(PathBuf::from(program))))
}

fn check_executable(path: &Path) -> Result<(), WrapError> {
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(WrapError::NotFound(path.to_owned())),
        Err(error) => return Err(WrapError::NotExecutable { path: path.to_owned(), reason: error.to_string() }),
    };
    if metadata.is_dir() {
        return Err(WrapError::NotExecutable { path: path.to_owned(), reason: "it is a directory".into() });
    }
    access(path, AccessFlags::X_OK).map_err(|errno| WrapError::NotExecutable {
        path: path.to_owned(),
        reason: format!("{} (check its mode and the filesystem's noexec flag)", errno.desc()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_program_in_path() {
        let path = resolve(OsStr::new("sh")).unwrap();
        assert!(path.ends_with("sh"));
    }

    #[test]
    fn missing_program_not_found() {
        assert!(matches!(resolve(OsStr::new("palisade-no-such-program")), Err(WrapError::NotFound(_))));
        assert!(matches!(resolve(OsStr::new("/nonexistent/x")), Err(WrapError::NotFound(_))));
    }

    #[test]
    fn directory_not_executable() {
        assert!(matches!(resolve(OsStr::new("/usr")), Err(WrapError::NotExecutable { .. })));
    }
}

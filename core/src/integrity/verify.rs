//! Comparing a tree with its manifest.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::entry::{escape, escape_path, Entry, EntryKind};
use super::scan::{scan_reusing, EntryError, ReuseMap, Scan, ScanOptions};
use super::{IntegrityError, Manifest};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The scan settings; the algorithm is taken from the manifest.
    pub scan: ScanOptions,
    /// Reuse a recorded digest when size, mtime, ctime and inode are unchanged. Never applies to
    /// the scope's high-assurance roots.
    pub metadata_fast_path: bool,
    /// Leave out the attributes that differ whenever a tree is copied or extracted (inode, ctime),
    /// for checking an extracted image against a manifest made on the original.
    pub ignore_identity: bool,
}

/// The kind of difference a [`Change`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
    /// The entry type changed, for example a file became a directory.
    TypeChanged,
    /// The file's size, mtime or ctime changed while it was being hashed, so its digest is unknown.
    ChangedWhileReading,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Modified => "modified",
            Self::TypeChanged => "type_changed",
            Self::ChangedWhileReading => "changed_while_reading",
        }
    }
}

/// One attribute that differs, with both values rendered as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    /// `type`, `mode`, `uid`, `gid`, `size`, `mtime`, `ctime`, `inode`, `nlink`, `rdev`, `target`,
    /// `digest`, or `xattr:NAME` with the escaped attribute name.
    pub attribute: String,
    /// `None` when the attribute did not exist (an extended attribute that was added).
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One difference between the manifest and the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: PathBuf,
    pub kind: ChangeKind,
    /// The differing attributes; for added and removed entries, empty.
    pub attributes: Vec<AttributeChange>,
    /// For an added entry: an entry recorded in the manifest with the same device and inode, so
    /// the new entry is a hard link to it.
    pub hard_link_of: Option<PathBuf>,
    /// The entry type before the change (or of a removed entry).
    pub old_kind: Option<EntryKind>,
    /// The entry type after the change (or of an added entry).
    pub new_kind: Option<EntryKind>,
}

/// The outcome of a verification.
#[derive(Debug, Default)]
pub struct Report {
    /// Changes sorted by path bytes.
    pub changes: Vec<Change>,
    pub errors: Vec<EntryError>,
    pub entries_checked: u64,
    pub files_hashed: u64,
    pub digests_reused: u64,
    pub bytes_hashed: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.changes.is_empty() && self.errors.is_empty()
    }
}

/// Scans the manifest's scope (under `options.scan.prefix`) and compares it with the manifest.
pub fn verify(manifest: &Manifest, options: &VerifyOptions) -> Result<Report, IntegrityError> {
    let mut scan_options = options.scan.clone();
    scan_options.algorithm = manifest.algorithm;
    scan_options.descend_pseudo = manifest.descend_pseudo;

    let reuse: Option<ReuseMap<'_>> =
        options.metadata_fast_path.then(|| manifest.entries.iter().map(|entry| (entry.path_bytes(), entry)).collect());
    let scan = scan_reusing(&manifest.scope, &scan_options, reuse.as_ref())?;

    Ok(compare(&manifest.entries, scan, options.ignore_identity))
}

/// Compares recorded entries with a scan; both are sorted by path bytes.
pub fn compare(recorded: &[Entry], scan: Scan, ignore_identity: bool) -> Report {
    let Scan { entries: current, changed_while_reading, errors, files_hashed, digests_reused, bytes_hashed } = scan;
    let unstable: std::collections::HashSet<&Path> = changed_while_reading.iter().map(PathBuf::as_path).collect();
    let unreadable: Vec<PathBuf> = errors.iter().map(|error| error.path.clone()).collect();

    let mut changes = Vec::new();
    let mut added = Vec::new();
    let (mut old_index, mut new_index) = (0, 0);
    while old_index < recorded.len() || new_index < current.len() {
        let order = match (recorded.get(old_index), current.get(new_index)) {
            (Some(old), Some(new)) => old.path_bytes().cmp(new.path_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let old = &recorded[old_index];
                // An entry that could not be read (or lies in a directory that could not be
                // listed) is reported as an error, not as removed.
                if !unreadable.iter().any(|path| old.path.starts_with(path)) {
                    changes.push(Change::whole(old.path.clone(), ChangeKind::Removed, Some(old.kind), None));
                }
                old_index += 1;
            }
            std::cmp::Ordering::Greater => {
                let new = &current[new_index];
                changes.push(Change::whole(new.path.clone(), ChangeKind::Added, None, Some(new.kind)));
                added.push(new_index);
                new_index += 1;
            }
            std::cmp::Ordering::Equal => {
                let (old, new) = (&recorded[old_index], &current[new_index]);
                if let Some(change) = compare_entry(old, new, unstable.contains(new.path.as_path()), ignore_identity) {
                    changes.push(change);
                }
                old_index += 1;
                new_index += 1;
            }
        }
    }

    name_hard_links(&mut changes, &current, &added);
    Report { changes, errors, entries_checked: current.len() as u64, files_hashed, digests_reused, bytes_hashed }
}

/// Sets `hard_link_of` on added entries that share device and inode with an entry that existed
/// before, to tell a new hard link from a new file. `added` indexes `current`.
fn name_hard_links(changes: &mut [Change], current: &[Entry], added: &[usize]) {
    let links: std::collections::HashSet<(u64, u64)> = added
        .iter()
        .map(|&index| &current[index])
        .filter(|entry| entry.kind != EntryKind::Directory && entry.nlink > 1)
        .map(|entry| (entry.device, entry.inode))
        .collect();
    if links.is_empty() {
        return;
    }

    let added_set: std::collections::HashSet<usize> = added.iter().copied().collect();
    let mut existing: HashMap<(u64, u64), &Path> = HashMap::new();
    for (index, entry) in current.iter().enumerate() {
        if !added_set.contains(&index) && links.contains(&(entry.device, entry.inode)) {
            existing.entry((entry.device, entry.inode)).or_insert(&entry.path);
        }
    }
    for change in changes.iter_mut().filter(|change| change.kind == ChangeKind::Added) {
        if let Some(entry) = current
            .binary_search_by(|entry| entry.path_bytes().cmp(change.path.as_os_str().as_encoded_bytes()))
            .ok()
            .map(|index| &current[index])
        {
            change.hard_link_of = existing.get(&(entry.device, entry.inode)).map(|path| path.to_path_buf());
        }
    }
}

impl Change {
    fn whole(path: PathBuf, kind: ChangeKind, old_kind: Option<EntryKind>, new_kind: Option<EntryKind>) -> Self {
        Self { path, kind, attributes: Vec::new(), hard_link_of: None, old_kind, new_kind }
    }
}

/// Compares two entries of one path and returns their differences, or `None` when they match.
pub fn compare_entry(old: &Entry, new: &Entry, changed_while_reading: bool, ignore_identity: bool) -> Option<Change> {
    let mut change = Change::whole(new.path.clone(), ChangeKind::Modified, Some(old.kind), Some(new.kind));
    if old.kind != new.kind {
        change.kind = ChangeKind::TypeChanged;
        change.attributes.push(attribute("type", old.kind, new.kind));
        return Some(change);
    }

    let attributes = &mut change.attributes;
    // Values are rendered as text only when they differ: most entries match.
    let mut check = |name: &str, differs: bool, render: &dyn Fn(&Entry) -> String| {
        if differs {
            attributes.push(AttributeChange {
                attribute: name.to_owned(),
                old: Some(render(old)),
                new: Some(render(new)),
            });
        }
    };
    // A directory's size, times and link count change with every entry added or removed in it;
    // those entries are reported themselves.
    let is_directory = old.kind == EntryKind::Directory;

    check("mode", old.mode != new.mode, &|entry| format!("{:04o}", entry.mode));
    check("uid", old.uid != new.uid, &|entry| entry.uid.to_string());
    check("gid", old.gid != new.gid, &|entry| entry.gid.to_string());
    if !is_directory {
        check("size", old.size != new.size, &|entry| entry.size.to_string());
        check("mtime", old.mtime != new.mtime, &|entry| entry.mtime.to_string());
        check("nlink", old.nlink != new.nlink, &|entry| entry.nlink.to_string());
        if !ignore_identity {
            check("ctime", old.ctime != new.ctime, &|entry| entry.ctime.to_string());
        }
    }
    if !ignore_identity {
        check("inode", old.inode != new.inode, &|entry| entry.inode.to_string());
    }
    check("rdev", old.rdev != new.rdev, &|entry| entry.rdev.to_string());
    check("target", old.target != new.target, &|entry| entry.target.as_deref().map(escape_path).unwrap_or_default());
    if !changed_while_reading {
        check("digest", old.digest != new.digest, &|entry| {
            entry.digest.as_deref().map(hex::encode).unwrap_or_default()
        });
    }
    compare_xattrs(&old.xattrs, &new.xattrs, attributes);

    if changed_while_reading {
        change.kind = ChangeKind::ChangedWhileReading;
        return Some(change);
    }
    (!change.attributes.is_empty()).then_some(change)
}

fn compare_xattrs(
    old: &BTreeMap<Vec<u8>, Vec<u8>>,
    new: &BTreeMap<Vec<u8>, Vec<u8>>,
    attributes: &mut Vec<AttributeChange>,
) {
    let names: std::collections::BTreeSet<&Vec<u8>> = old.keys().chain(new.keys()).collect();
    for name in names {
        let (old_value, new_value) = (old.get(name), new.get(name));
        if old_value != new_value {
            attributes.push(AttributeChange {
                attribute: format!("xattr:{}", escape(name)),
                old: old_value.map(hex::encode),
                new: new_value.map(hex::encode),
            });
        }
    }
}

fn attribute(name: &str, old: impl ToString, new: impl ToString) -> AttributeChange {
    AttributeChange { attribute: name.to_owned(), old: Some(old.to_string()), new: Some(new.to_string()) }
}

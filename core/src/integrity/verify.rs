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

    // Inodes of entries that existed before, to tell a new hard link from a new file.
    let recorded_paths: std::collections::HashSet<&[u8]> = recorded.iter().map(Entry::path_bytes).collect();
    let mut existing_inodes: HashMap<(u64, u64), &Path> = HashMap::new();
    for entry in current.iter().filter(|entry| entry.kind != EntryKind::Directory) {
        if recorded_paths.contains(entry.path_bytes()) {
            existing_inodes.entry((entry.device, entry.inode)).or_insert(&entry.path);
        }
    }

    let mut changes = Vec::new();
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
                changes.push(Change::whole(old.path.clone(), ChangeKind::Removed, Some(old.kind), None));
                old_index += 1;
            }
            std::cmp::Ordering::Greater => {
                let new = &current[new_index];
                let mut change = Change::whole(new.path.clone(), ChangeKind::Added, None, Some(new.kind));
                if new.kind != EntryKind::Directory {
                    change.hard_link_of = existing_inodes.get(&(new.device, new.inode)).map(|path| path.to_path_buf());
                }
                changes.push(change);
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

    Report { changes, errors, entries_checked: current.len() as u64, files_hashed, digests_reused, bytes_hashed }
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
    let mut check = |name: &str, old_value: String, new_value: String| {
        if old_value != new_value {
            attributes.push(AttributeChange { attribute: name.to_owned(), old: Some(old_value), new: Some(new_value) });
        }
    };
    // A directory's size, times and link count change with every entry added or removed in it;
    // those entries are reported themselves.
    let is_directory = old.kind == EntryKind::Directory;

    check("mode", format!("{:04o}", old.mode), format!("{:04o}", new.mode));
    check("uid", old.uid.to_string(), new.uid.to_string());
    check("gid", old.gid.to_string(), new.gid.to_string());
    if !is_directory {
        check("size", old.size.to_string(), new.size.to_string());
        check("mtime", old.mtime.to_string(), new.mtime.to_string());
        check("nlink", old.nlink.to_string(), new.nlink.to_string());
        if !ignore_identity {
            check("ctime", old.ctime.to_string(), new.ctime.to_string());
        }
    }
    if !ignore_identity {
        check("inode", old.inode.to_string(), new.inode.to_string());
    }
    check("rdev", old.rdev.to_string(), new.rdev.to_string());
    let render_target = |entry: &Entry| entry.target.as_deref().map(escape_path).unwrap_or_default();
    check("target", render_target(old), render_target(new));
    if !changed_while_reading {
        let render_digest = |entry: &Entry| entry.digest.as_deref().map(hex::encode).unwrap_or_default();
        check("digest", render_digest(old), render_digest(new));
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

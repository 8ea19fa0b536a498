//! Telemetry events for integrity results, in the one Palisade event schema.

use std::path::Path;

use super::entry::escape_path;
use super::{Change, ChangeKind, Report};
use crate::telemetry::{attributes, names, Event, Severity};

/// A `palisade.integrity.changed` event for one change. `process` is the pid and executable that
/// made the change, when the watch backend reports it.
pub fn change_event(change: &Change, process: Option<(u32, Option<&Path>)>) -> Event {
    let path = escape_path(&change.path);
    let names_changed: Vec<String> = change.attributes.iter().map(|attribute| attribute.attribute.clone()).collect();
    let old_values: Vec<String> = change.attributes.iter().map(|a| a.old.clone().unwrap_or_default()).collect();
    let new_values: Vec<String> = change.attributes.iter().map(|a| a.new.clone().unwrap_or_default()).collect();

    let mut event = Event::new(names::INTEGRITY_CHANGED, Severity::Warn)
        .with_body(format!("{} {}", change.kind.as_str(), path))
        .with(attributes::FILE_PATH, path)
        .with(attributes::INTEGRITY_CHANGE, change.kind.as_str());
    if !names_changed.is_empty() {
        event = event
            .with(attributes::INTEGRITY_ATTRIBUTES, names_changed)
            .with(attributes::INTEGRITY_OLD_VALUES, old_values)
            .with(attributes::INTEGRITY_NEW_VALUES, new_values);
    }
    event = event.with_optional(attributes::INTEGRITY_HARD_LINK_OF, change.hard_link_of.as_deref().map(escape_path));
    if let Some((pid, executable)) = process {
        event = event
            .with(attributes::PROCESS_PID, pid)
            .with_optional(attributes::PROCESS_EXECUTABLE_PATH, executable.map(escape_path));
    }
    if change.kind == ChangeKind::ChangedWhileReading {
        event = event.with(attributes::REASON, "the file changed while it was hashed");
    }
    event
}

/// A `palisade.integrity.verified` event summarising a verification.
pub fn verified_event(report: &Report, manifest: &Path, prefix: Option<&Path>) -> Event {
    let severity = if report.is_clean() { Severity::Info } else { Severity::Warn };
    Event::new(names::INTEGRITY_VERIFIED, severity)
        .with_body(format!("{} changes, {} errors", report.changes.len(), report.errors.len()))
        .with(attributes::INTEGRITY_MANIFEST, manifest.display().to_string())
        .with_optional(attributes::INTEGRITY_ROOT_PREFIX, prefix.map(|prefix| prefix.display().to_string()))
        .with(attributes::INTEGRITY_ENTRIES_CHECKED, report.entries_checked)
        .with(attributes::INTEGRITY_CHANGES, report.changes.len())
        .with(attributes::INTEGRITY_ERRORS, report.errors.len())
}

/// A `palisade.integrity.coverage_lost` event: changes may have been missed, for the given reason.
pub fn coverage_lost_event(reason: &str, backend: &'static str) -> Event {
    Event::new(names::INTEGRITY_COVERAGE_LOST, Severity::Error)
        .with_body(format!("integrity watch lost events: {reason}; rescanning"))
        .with(attributes::REASON, reason)
        .with(attributes::INTEGRITY_WATCH_BACKEND, backend)
}

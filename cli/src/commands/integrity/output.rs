//! Rendering verification results as a table or as JSON.

use palisade_core::integrity::{escape_path, Change, Report};
use serde_json::{json, Value};

/// One change as a JSON object.
pub fn change_json(change: &Change) -> Value {
    let attributes: Vec<Value> = change
        .attributes
        .iter()
        .map(|attribute| json!({"name": attribute.attribute, "old": attribute.old, "new": attribute.new}))
        .collect();
    json!({
        "path": escape_path(&change.path),
        "change": change.kind.as_str(),
        "old_type": change.old_kind.map(|kind| kind.as_str()),
        "new_type": change.new_kind.map(|kind| kind.as_str()),
        "attributes": attributes,
        "hard_link_of": change.hard_link_of.as_deref().map(escape_path),
    })
}

/// The whole report as one JSON document.
pub fn report_json(report: &Report) -> Value {
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|error| json!({"path": escape_path(&error.path), "operation": error.operation, "error": error.error.to_string()}))
        .collect();
    json!({
        "clean": report.is_clean(),
        "entries_checked": report.entries_checked,
        "files_hashed": report.files_hashed,
        "digests_reused": report.digests_reused,
        "bytes_hashed": report.bytes_hashed,
        "changes": report.changes.iter().map(change_json).collect::<Vec<_>>(),
        "errors": errors,
    })
}

/// The report as a table: one row per changed attribute, paths escaped as in the manifest.
pub fn report_table(report: &Report) -> String {
    let mut rows: Vec<[String; 4]> = Vec::new();
    for change in &report.changes {
        let path = escape_path(&change.path);
        if change.attributes.is_empty() {
            let detail = match &change.hard_link_of {
                Some(target) => format!("hard link of {}", escape_path(target)),
                None => change.old_kind.or(change.new_kind).map(|kind| kind.to_string()).unwrap_or_default(),
            };
            rows.push([change.kind.as_str().to_owned(), path, detail, String::new()]);
            continue;
        }
        for attribute in &change.attributes {
            let values = format!(
                "{} -> {}",
                attribute.old.as_deref().unwrap_or("(none)"),
                attribute.new.as_deref().unwrap_or("(none)")
            );
            rows.push([change.kind.as_str().to_owned(), path.clone(), attribute.attribute.clone(), values]);
        }
    }

    let mut text = String::new();
    if !rows.is_empty() {
        let header = ["CHANGE".to_owned(), "PATH".to_owned(), "ATTRIBUTE".to_owned(), "OLD -> NEW".to_owned()];
        let widths: Vec<usize> =
            (0..3).map(|column| rows.iter().chain([&header]).map(|row| row[column].len()).max().unwrap_or(0)).collect();
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    for error in &report.errors {
        text.push_str(&format!("error: {error}\n"));
    }
    text.push_str(&format!(
        "{} entries checked, {} changes, {} errors ({} files hashed, {} digests reused)\n",
        report.entries_checked,
        report.changes.len(),
        report.errors.len(),
        report.files_hashed,
        report.digests_reused
    ));
    text
}

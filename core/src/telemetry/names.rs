//! Event names: every security event Palisade reports has one of these.

pub const POLICY_APPLIED: &str = "palisade.policy.applied";
pub const POLICY_FAILED: &str = "palisade.policy.failed";
pub const POLICY_RELOADED: &str = "palisade.policy.reloaded";
pub const EXEC_FAILED: &str = "palisade.exec.failed";
pub const SYSCALL_DENIED: &str = "palisade.syscall.denied";
pub const SYSCALL_AUDITED: &str = "palisade.syscall.audited";
pub const EGRESS_DECISION: &str = "palisade.egress.decision";
pub const PROCESS_STARTED: &str = "palisade.process.started";
pub const INTEGRITY_VERIFIED: &str = "palisade.integrity.verified";
pub const INTEGRITY_CHANGED: &str = "palisade.integrity.changed";
pub const INTEGRITY_COVERAGE_LOST: &str = "palisade.integrity.coverage_lost";
/// Cumulative counter values, written only by the JSON lines exporter.
pub const METRICS: &str = "palisade.metrics";

/// Counter of egress decisions, by `palisade.decision` and `palisade.policy.mode`.
pub const EGRESS_DECISIONS: &str = "palisade.egress.decisions";
/// Counter of proxy requests and connections rejected before a policy decision, by
/// `palisade.reason` (`connection-limit`, `header-too-large`, `header-timeout`, `bad-request`).
pub const EGRESS_REJECTED: &str = "palisade.egress.rejected";

//! Decision events and counters.

use std::net::SocketAddr;
use std::time::Instant;

use http::Method;

use super::head::Authority;
use crate::egress::{Action, Engine, Reason, Verdict};
use crate::policy::Mode;
use crate::telemetry::{attributes, names, Event, Severity, Telemetry, Value};

/// Everything a `palisade.egress.decision` event reports about one request or tunnel.
#[derive(Debug)]
pub(super) struct DecisionRecord<'a> {
    pub(super) client: SocketAddr,
    pub(super) method: &'a Method,
    pub(super) authority: &'a Authority,
    pub(super) address: Option<SocketAddr>,
    pub(super) verdict: Verdict,
    pub(super) mode: Mode,
    pub(super) audited: bool,
    pub(super) policy_hash: &'a str,
    pub(super) status: Option<u16>,
    pub(super) bytes_sent: u64,
    pub(super) bytes_received: u64,
    pub(super) started: Instant,
    pub(super) error_type: Option<&'static str>,
}

impl<'a> DecisionRecord<'a> {
    /// Starts the record of one request as a default deny, before any rule is consulted.
    pub(super) fn pending(
        client: SocketAddr,
        method: &'a Method,
        authority: &'a Authority,
        engine: &'a Engine,
        started: Instant,
    ) -> Self {
        Self {
            client,
            method,
            authority,
            address: None,
            verdict: Verdict { action: Action::Deny, rule: None, reason: Reason::Default },
            mode: engine.mode(),
            audited: false,
            policy_hash: engine.policy_hash(),
            status: None,
            bytes_sent: 0,
            bytes_received: 0,
            started,
            error_type: None,
        }
    }
}

/// Emits the decision event and counts it in `palisade.egress.decisions`.
pub(super) fn decision(telemetry: &Telemetry, record: &DecisionRecord<'_>) {
    let verdict = &record.verdict;
    let mode = match record.mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    let severity = match (verdict.action, record.error_type) {
        (Action::Allow, None) => Severity::Info,
        _ => Severity::Warn,
    };
    let body = match (verdict.action, record.audited) {
        (Action::Allow, _) => "egress allowed",
        (Action::Deny, true) => "egress would be denied in enforce mode; audit mode let it through",
        (Action::Deny, false) => "egress denied",
    };

    let duration_ms = record.started.elapsed().as_secs_f64() * 1000.0;
    let event = Event::new(names::EGRESS_DECISION, severity)
        .with_body(body)
        .with(attributes::DECISION, verdict.action.as_str())
        .with(attributes::REASON, verdict.reason.as_str())
        .with_optional(attributes::RULE_ID, verdict.rule.clone())
        .with(attributes::POLICY_HASH, record.policy_hash)
        .with(attributes::POLICY_MODE, mode)
        .with(attributes::EGRESS_AUDITED, record.audited)
        .with(attributes::CLIENT_ADDRESS, record.client.ip().to_string())
        .with(attributes::CLIENT_PORT, record.client.port())
        .with(attributes::HTTP_REQUEST_METHOD, record.method.as_str())
        .with(attributes::SERVER_ADDRESS, record.authority.host.to_string())
        .with(attributes::SERVER_PORT, record.authority.port)
        .with_optional(attributes::NETWORK_PEER_ADDRESS, record.address.map(|address| address.ip().to_string()))
        .with_optional(attributes::HTTP_RESPONSE_STATUS_CODE, record.status)
        .with(attributes::BYTES_SENT, record.bytes_sent)
        .with(attributes::BYTES_RECEIVED, record.bytes_received)
        .with(attributes::DURATION_MS, duration_ms)
        .with_optional(attributes::ERROR_TYPE, record.error_type);
    telemetry.emit(event);

    let counter_attributes =
        [(attributes::DECISION, Value::from(verdict.action.as_str())), (attributes::POLICY_MODE, Value::from(mode))];
    telemetry.count(names::EGRESS_DECISIONS, 1, &counter_attributes);
}

/// Counts a request or connection rejected before any policy decision (a limit or a malformed
/// request) in `palisade.egress.rejected`.
pub(super) fn rejected(telemetry: &Telemetry, reason: &'static str) {
    telemetry.count(names::EGRESS_REJECTED, 1, &[(attributes::REASON, Value::from(reason))]);
}

//! Choosing the address to dial: one lookup, every answer checked, only a checked address
//! returned.

use std::net::{IpAddr, SocketAddr};

use http::StatusCode;

use super::head::Authority;
use super::Shared;
use crate::egress::{Action, Destination, Engine, NameCheck, Reason, Verdict};
use crate::policy::Mode;

/// An address the proxy may dial, with the decision that allowed it.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) address: SocketAddr,
    pub(super) verdict: Verdict,
    /// Whether enforce mode would have denied this connection and audit mode let it through.
    pub(super) audited: bool,
}

/// Why no address may be dialled.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) verdict: Verdict,
    /// The address that was checked, when there was one.
    pub(super) address: Option<SocketAddr>,
    pub(super) message: String,
}

/// Decides where a request for `authority` may go.
///
/// A name is resolved once. Answers that the policy denies are dropped and the first allowed
/// answer, in resolver order, is the route; when every answer is denied the request is refused
/// with the verdict of the first one. In audit mode a denied destination is routed to its first
/// answer and marked as audited. The proxy's own listening address is refused in both modes.
pub(super) async fn route(shared: &Shared, engine: &Engine, authority: &Authority) -> Result<Route, Refusal> {
    let port = authority.port;
    let audit = engine.mode() == Mode::Audit;

    let (name, addresses) = match &authority.host {
        Destination::Address(address) => (None, vec![*address]),
        Destination::Name(name) => {
            if let NameCheck::Decided(verdict) = engine.check_name(name, port) {
                if !audit && !verdict.is_allowed() {
                    return Err(denied(verdict, None));
                }
            }
            let addresses = match shared.resolver.lookup(name).await {
                Ok(addresses) if !addresses.is_empty() => addresses,
                Ok(_) => return Err(lookup_failed(format!("{name} has no A or AAAA records"))),
                Err(error) => return Err(lookup_failed(error.to_string())),
            };
            (Some(name.as_str()), addresses)
        }
    };

    let checked: Vec<(SocketAddr, Verdict)> = addresses
        .into_iter()
        .map(|address| {
            let socket = SocketAddr::new(address, port);
            let verdict = match is_own_address(shared, socket) {
                true => Verdict { action: Action::Deny, rule: None, reason: Reason::ProxyItself },
                false => engine.check_address(name, address, port),
            };
            (socket, verdict)
        })
        .collect();

    if let Some((address, verdict)) = checked.iter().find(|(_, verdict)| verdict.is_allowed()) {
        return Ok(Route { address: *address, verdict: verdict.clone(), audited: false });
    }

    let (first_address, first_verdict) = checked[0].clone();
    if audit {
        let dialable = checked.iter().find(|(_, verdict)| verdict.reason != Reason::ProxyItself);
        if let Some((address, verdict)) = dialable {
            return Ok(Route { address: *address, verdict: verdict.clone(), audited: true });
        }
    }
    Err(denied(first_verdict, Some(first_address)))
}

fn denied(verdict: Verdict, address: Option<SocketAddr>) -> Refusal {
    let message = match (&verdict.rule, verdict.reason) {
        (Some(rule), _) => format!("egress denied by policy rule {rule}"),
        (None, Reason::Default) => "egress denied: no policy rule allows this destination".to_owned(),
        (None, Reason::ProxyItself) => "egress denied: the destination is the proxy itself".to_owned(),
        (None, reason) => format!(
            "egress denied: the address is special-purpose ({}); only an allow rule with a CIDR containing it admits it",
            reason.as_str()
        ),
    };
    Refusal { status: StatusCode::FORBIDDEN, verdict, address, message }
}

fn lookup_failed(message: String) -> Refusal {
    let verdict = Verdict { action: Action::Deny, rule: None, reason: Reason::LookupFailed };
    Refusal { status: StatusCode::BAD_GATEWAY, verdict, address: None, message }
}

/// Whether dialling `address` would reach one of the proxy's listening sockets.
///
/// NOTE: with a wildcard listener, the host's other interface addresses on the same port also
/// reach the proxy; only loopback and unspecified destinations are recognised here.
fn is_own_address(shared: &Shared, address: SocketAddr) -> bool {
    let own = shared.own_addresses.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    own.iter().any(|listening| {
        // 0.0.0.0 and :: as a destination reach the local host, like a wildcard listener's
        // loopback addresses do.
        let reaches_wildcard = listening.ip().is_unspecified() && is_loopback(address.ip());
        listening.port() == address.port()
            && (listening.ip() == address.ip() || address.ip().is_unspecified() || reaches_wildcard)
    })
}

fn is_loopback(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

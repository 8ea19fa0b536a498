//! Trace context from an INVOKE event's `tracing` field.

use palisade_core::telemetry::TraceContext;

use crate::api::Tracing;

/// Parses an X-Ray header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`)
/// or a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) into a trace context. The X-Ray trace
/// id is the OpenTelemetry trace id with the dashes and version removed.
pub fn parse(tracing: &Tracing) -> Option<TraceContext> {
    let value = tracing.value.trim();
    if tracing.kind.eq_ignore_ascii_case("X-Amzn-Trace-Id") || value.contains("Root=") {
        parse_xray(value)
    } else {
        parse_traceparent(value)
    }
}

fn parse_xray(value: &str) -> Option<TraceContext> {
    let (mut trace_id, mut parent, mut sampled) = (None, None, false);
    for field in value.split(';') {
        let Some((key, field_value)) = field.trim().split_once('=') else { continue };
        match key {
            "Root" => {
                let mut parts = field_value.split('-');
                let (_version, epoch, unique) = (parts.next()?, parts.next()?, parts.next()?);
                trace_id = decode::<16>(&format!("{epoch}{unique}"));
            }
            "Parent" => parent = decode::<8>(field_value),
            "Sampled" => sampled = field_value == "1",
            _ => {}
        }
    }
    Some(TraceContext { trace_id: trace_id?, parent_span_id: parent, sampled })
}

fn parse_traceparent(value: &str) -> Option<TraceContext> {
    let mut parts = value.split('-');
    let (_version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let flags = decode::<1>(flags)?;
    Some(TraceContext { trace_id: decode(trace_id)?, parent_span_id: decode(parent), sampled: flags[0] & 1 == 1 })
}

/// Decodes exactly `N` bytes of hex; an all-zero id is invalid in both formats.
fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes: [u8; N] = hex::decode(text).ok()?.try_into().ok()?;
    (bytes.iter().any(|byte| *byte != 0) || N == 1).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracing(kind: &str, value: &str) -> Tracing {
        Tracing { kind: kind.into(), value: value.into() }
    }

    #[test]
    fn xray_header_gives_trace_and_parent() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

        let context = parse(&tracing("X-Amzn-Trace-Id", header)).unwrap();

        assert_eq!(hex::encode(context.trace_id), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(hex::encode(context.parent_span_id.unwrap()), "53995c3f42cd8ad8");
        assert!(context.sampled);
    }

    #[test]
    fn xray_header_without_parent() {
        let context = parse(&tracing("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0")).unwrap();

        assert_eq!(context.parent_span_id, None);
        assert!(!context.sampled);
    }

    #[test]
    fn traceparent_parsed() {
        let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

        let context = parse(&tracing("traceparent", value)).unwrap();

        assert_eq!(hex::encode(context.trace_id), "0af7651916cd43dd8448eb211c80319c");
        assert!(context.sampled);
    }

    #[test]
    fn malformed_root_rejected() {
        assert_eq!(parse(&tracing("X-Amzn-Trace-Id", "Root=1-zz;Parent=53995c3f42cd8ad8")), None);
    }
}

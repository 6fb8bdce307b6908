//! One structured line per request, JSON, as Workers Logs and `wrangler tail` index it: what
//! was asked, how it ended and how long it took. Never a secret: the path without its query,
//! no key, no header but the trace's id, no body.

use serde::Serialize;

/// One request's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// The error code of an error answer (`rate_limited`, `validation_error`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
    pub ms: u64,
    /// The W3C trace id of the caller's `traceparent`, so that its lines and ours can be
    /// joined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
}

impl AccessLine<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if it is one: lower
/// case hex, not all zeros.
pub fn trace_id(traceparent: Option<&str>) -> Option<&str> {
    let mut parts = traceparent?.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && hex(flags, 2)
        && (version != "00" || parts.next().is_none());
    valid.then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_without_what_is_not_known() {
        let line = AccessLine {
            method: "POST",
            path: "/pdf",
            status: 429,
            error: Some("rate_limited"),
            ms: 12,
            trace_id: None,
        };
        let text = line.to_json();
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], 429);
        assert_eq!(v["error"], "rate_limited");
        assert!(v.get("trace_id").is_none());
    }

    #[test]
    fn only_a_valid_traceparent_gives_its_trace_id() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id(Some(&format!("00-{id}-00f067aa0ba902b7-01"))), Some(id));
        for bad in [
            String::from("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{id}-0000000000000000-01"),
            format!("ff-{id}-00f067aa0ba902b7-01"),
            format!("00-{id}-00f067aa0ba902b7-01-extra"),
            format!("00-{id}-00f067aa0ba902b7"),
            String::from("garbage"),
        ] {
            assert_eq!(trace_id(Some(&bad)), None, "{bad}");
        }
        // A later version may add fields after the flags.
        assert_eq!(trace_id(Some(&format!("01-{id}-00f067aa0ba902b7-01-x"))), Some(id));
        assert_eq!(trace_id(None), None);
    }
}

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
    /// The W3C trace id: the caller's (`traceparent`), else a new one. A job's message
    /// carries it to the renderer, whose log lines and calls back carry it too.
    pub trace_id: &'a str,
}

impl AccessLine<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object() {
        let line = AccessLine {
            method: "POST",
            path: "/pdf",
            status: 429,
            error: Some("rate_limited"),
            ms: 12,
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
        };
        let text = line.to_json();
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], 429);
        assert_eq!(v["error"], "rate_limited");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

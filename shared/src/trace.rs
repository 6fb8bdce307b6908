//! W3C trace context (`traceparent`): one trace id from a client's `POST /pdf` through the
//! queue message, the renderer's log lines and its calls back to the edge, so that one job's
//! lines can be found on both sides. Nothing is sampled or exported: only the ids travel.

/// A `traceparent`: `00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    parent_id: String,
    flags: String,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // Without randomness ids would collide; every supported platform has it (as for job ids).
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("no random numbers: {e}"));
    if bytes.iter().all(|b| *b == 0) {
        bytes[N - 1] = 1; // all zeros is invalid
    }
    hex::encode(bytes)
}

impl TraceParent {
    /// The header's value, if valid: lower-case hex, neither id all zeros, version `ff`
    /// refused, and nothing after the flags in version `00` (later versions may add fields).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        let valid = is_hex(version, 2)
            && version != "ff"
            && is_hex(trace, 32)
            && nonzero(trace)
            && is_hex(parent, 16)
            && nonzero(parent)
            && is_hex(flags, 2)
            && (version != "00" || parts.next().is_none());
        valid.then(|| Self {
            trace_id: trace.into(),
            parent_id: parent.into(),
            flags: flags.into(),
        })
    }

    /// A new trace, for a request that came without one.
    pub fn new_trace() -> Self {
        Self { trace_id: random_hex::<16>(), parent_id: random_hex::<8>(), flags: "00".into() }
    }

    /// The context of a call made on behalf of this one: same trace, a span id of its own.
    pub fn child(&self) -> Self {
        Self { parent_id: random_hex::<8>(), ..self.clone() }
    }

    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The header's value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn only_a_valid_header_parses() {
        let good = format!("00-{ID}-00f067aa0ba902b7-01");
        let t = TraceParent::parse(&good).unwrap();
        assert_eq!((t.trace_id(), t.header()), (ID, good));
        for bad in [
            String::from("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{ID}-0000000000000000-01"),
            format!("ff-{ID}-00f067aa0ba902b7-01"),
            format!("00-{ID}-00f067aa0ba902b7-01-extra"),
            format!("00-{ID}-00f067aa0ba902b7"),
            String::from("garbage"),
            String::new(),
        ] {
            assert_eq!(TraceParent::parse(&bad), None, "{bad}");
        }
        let later = TraceParent::parse(&format!("01-{ID}-00f067aa0ba902b7-01-x")).unwrap();
        assert_eq!(later.header(), format!("00-{ID}-00f067aa0ba902b7-01"), "written as 00");
    }

    #[test]
    fn new_traces_and_children_are_valid_and_children_keep_the_trace() {
        let t = TraceParent::new_trace();
        assert_eq!(TraceParent::parse(&t.header()), Some(t.clone()));
        assert_ne!(TraceParent::new_trace().trace_id(), t.trace_id());
        let child = t.child();
        assert_eq!(child.trace_id(), t.trace_id());
        assert_ne!(child.header(), t.header());
        assert_eq!(TraceParent::parse(&child.header()), Some(child));
    }
}

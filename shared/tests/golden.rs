//! Golden tests: every JSON example on TailPDF's async-jobs page (a verbatim copy in
//! fixtures/) deserializes into our types and serializes back to the same fields.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use serde_json::Value;
use tailpdf_shared::{
    job::{JobAccepted, JobView},
    request::PdfRequest,
    webhook::WebhookPayload,
    UrlPolicy,
};

const SEED: &str = include_str!("fixtures/seed-async-jobs.txt");

/// Every balanced `{...}` block that starts a line (or follows `-d '`), as JSON values.
fn seed_examples() -> Vec<Value> {
    let mut out = Vec::new();
    let bytes = SEED.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_line = i == 0 || bytes[i - 1] == b'\n' || SEED[..i].ends_with("-d '");
        if bytes[i] == b'{' && starts_line {
            let mut depth = 0;
            let mut in_str = false;
            let mut j = i;
            while j < bytes.len() {
                match bytes[j] {
                    b'\\' if in_str => j += 1,
                    b'"' => in_str = !in_str,
                    b'{' if !in_str => depth += 1,
                    b'}' if !in_str => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let block = &SEED[i..=j];
            let value: Value = serde_json::from_str(block)
                .unwrap_or_else(|e| panic!("seed block is not JSON ({e}):\n{block}"));
            out.push(value);
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("does not deserialize ({e}): {v}"));
    serde_json::to_value(&typed).unwrap()
}

#[test]
fn the_seed_has_six_json_examples() {
    // request, 202, completed job, failed job, completed webhook, failed webhook
    assert_eq!(seed_examples().len(), 6);
}

#[test]
fn every_seed_example_round_trips_through_our_types() {
    let mut kinds = Vec::new();
    for example in seed_examples() {
        let (kind, back) = if example.get("content").is_some() {
            ("request", round_trip::<PdfRequest>(&example))
        } else if example.get("status_url").is_some() {
            ("accepted", round_trip::<JobAccepted>(&example))
        } else if example.get("event").is_some() {
            ("webhook", round_trip::<WebhookPayload>(&example))
        } else {
            ("job", round_trip::<JobView>(&example))
        };
        assert_eq!(back, example, "{kind} example changed on the way through");
        kinds.push(kind);
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["accepted", "job", "job", "request", "webhook", "webhook"]);
}

#[test]
fn the_seed_request_is_valid() {
    let request = seed_examples().into_iter().find(|v| v.get("content").is_some()).unwrap();
    let body = serde_json::to_vec(&request).unwrap();
    let valid = tailpdf_shared::parse_pdf_request(&body, UrlPolicy::PRODUCTION).unwrap();
    assert!(matches!(valid.delivery, tailpdf_shared::Delivery::Async { webhook_url: Some(_), .. }));
    assert_eq!(valid.spec.fonts[0].to_string(), "Inter:wght@400;600");
}

#[test]
fn the_design_request_example_is_valid() {
    // DESIGN.md's full example: every option, with nulls for the unset ones.
    let body = include_str!("fixtures/design-request.json");
    let valid = tailpdf_shared::parse_pdf_request(body.as_bytes(), UrlPolicy::PRODUCTION).unwrap();
    assert_eq!(valid.spec.pdf_options.format.as_deref(), Some("A4"));
    assert!(valid.spec.config.is_some());
}

#[test]
fn the_seed_ids_and_states_are_understood() {
    for example in seed_examples().into_iter().filter(|v| v.get("created_at").is_some()) {
        let view: JobView = serde_json::from_value(example).unwrap();
        assert_eq!(view.job_id.as_str(), "01JFXYZ123456789ABCDEFGH");
        assert!(view.status.is_terminal());
        assert!(view.created_at <= view.started_at.unwrap());
        assert!(view.started_at.unwrap() <= view.completed_at.unwrap());
    }
}

//! Property tests: no parser or validator panics on arbitrary input, and everything that
//! travels as JSON comes back unchanged.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use proptest::prelude::*;
use serde_json::Value;
use tailpdf_shared::{
    fonts::FontSpec,
    job::{JobEvent, JobRecord, JobStatus, RenderResult, Transition},
    messages::{RenderJobMessage, SecretUrl, WebhookMessage},
    pdf_options::{Length, PdfOptions},
    request::validate_idempotency_key,
    signing::{verify_internal, verify_tailpdf_signature, StandardWebhookKey},
    url_guard::{check_url, redact_url},
    webhook::WebhookPayload,
    JobId, Timestamp, UrlPolicy,
};

/// Arbitrary JSON, biased towards the shapes and names of a `POST /pdf` body.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
        Just(Value::String("Inter:wght@400;600".into())),
        Just(Value::String("https://example.com/a.pdf".into())),
        Just(Value::String("10mm".into())),
    ];
    let key = prop_oneof![
        Just("content"),
        Just("fonts"),
        Just("config"),
        Just("pdfOptions"),
        Just("async"),
        Just("upload_url"),
        Just("webhook_url"),
        Just("format"),
        Just("margin"),
        Just("scale"),
        Just("theme"),
        Just("extend"),
        Just("top"),
        Just("pageRanges"),
        Just("width"),
        Just("x"),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..4_102_444_800).prop_map(|s| Timestamp::from_unix(s).unwrap())
}

fn job_id() -> impl Strategy<Value = JobId> {
    (any::<u64>(), any::<u128>()).prop_map(|(ms, r)| JobId::from_parts(ms >> 16, r))
}

fn render_result() -> impl Strategy<Value = RenderResult> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| RenderResult {
        file_size_bytes: a,
        render_duration_ms: b,
        upload_duration_ms: c,
    })
}

fn event() -> impl Strategy<Value = JobEvent> {
    prop_oneof![
        timestamp().prop_map(|at| JobEvent::Processing { at }),
        timestamp().prop_map(|at| JobEvent::Uploading { at }),
        (timestamp(), render_result()).prop_map(|(at, result)| JobEvent::Completed { at, result }),
        (timestamp(), ".{0,40}")
            .prop_map(|(at, error_message)| JobEvent::Failed { at, error_message }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = tailpdf_shared::parse_pdf_request(&body, UrlPolicy::PRODUCTION);
    }

    #[test]
    fn validation_never_panics_on_json(value in json(), dev in any::<bool>()) {
        let body = serde_json::to_vec(&value).unwrap();
        let policy = if dev { UrlPolicy::DEVELOPMENT } else { UrlPolicy::PRODUCTION };
        if let Err(e) = tailpdf_shared::parse_pdf_request(&body, policy) {
            // Every refusal is a client error with a message.
            prop_assert!((400..500).contains(&e.status()));
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn valid_requests_give_specs_that_round_trip(content in "[a-z<> ]{1,40}[a-z]", scale in 0.1f64..=2.0) {
        let body = serde_json::json!({"content": content, "pdfOptions": {"scale": scale}});
        let valid = tailpdf_shared::parse_pdf_request(body.to_string().as_bytes(), UrlPolicy::PRODUCTION).unwrap();
        let json = serde_json::to_string(&valid.spec).unwrap();
        prop_assert_eq!(serde_json::from_str::<tailpdf_shared::RenderSpec>(&json).unwrap(), valid.spec);
    }

    #[test]
    fn font_parser_never_panics_and_normal_form_is_stable(spec in ".{0,80}") {
        if let Ok(font) = FontSpec::parse(&spec) {
            let again = FontSpec::parse(&font.to_string()).unwrap();
            prop_assert_eq!(again.to_string(), font.to_string());
        }
    }

    #[test]
    fn font_parser_on_spec_like_input(
        family in "[A-Za-z][A-Za-z0-9 +]{0,20}",
        axes in prop::collection::vec(prop_oneof![Just("wght"), Just("ital"), Just("wdth"), Just("GRAD"), Just("opsz")], 0..4),
        values in prop::collection::vec("[0-9.]{1,4}(\\.\\.[0-9]{1,4})?", 0..6),
    ) {
        let spec = if axes.is_empty() { family } else { format!("{family}:{}@{}", axes.join(","), values.join(";")) };
        if let Ok(font) = FontSpec::parse(&spec) {
            prop_assert_eq!(FontSpec::parse(&font.to_string()).unwrap(), font);
        }
    }

    #[test]
    fn url_guard_never_panics(raw in ".{0,100}", host in "[a-z0-9.:\\[\\]-]{0,30}") {
        let _ = check_url("upload_url", &raw, UrlPolicy::PRODUCTION);
        let _ = check_url("upload_url", &format!("https://{host}/x?y=z"), UrlPolicy::DEVELOPMENT);
        let shown = redact_url(&format!("https://{host}/x?sig=SECRET"));
        prop_assert!(!shown.contains("SECRET"), "{}", shown);
    }

    #[test]
    fn lengths_never_panic(text in ".{0,20}", px in any::<f64>()) {
        let _ = Length::Text(text).inches();
        let _ = Length::Pixels(px).inches();
    }

    #[test]
    fn pdf_options_never_panic(value in json()) {
        if let Ok(options) = serde_json::from_value::<PdfOptions>(value) {
            let _ = options.validate();
        }
    }

    #[test]
    fn signature_verifiers_never_panic(header in ".{0,120}", body in prop::collection::vec(any::<u8>(), 0..64), now in any::<i64>()) {
        let _ = verify_tailpdf_signature("s", &body, &header);
        let _ = verify_internal("s", Some(&header), "POST", "/x", &body, now);
        let _ = StandardWebhookKey::from_secret(&header).verify("id", &header, &header, &body, now);
    }

    #[test]
    fn ids_and_timestamps_never_panic(s in ".{0,40}") {
        let _ = JobId::parse(&s);
        let _ = Timestamp::parse(&s);
        let _ = validate_idempotency_key(&s);
    }

    #[test]
    fn timestamps_round_trip(t in timestamp()) {
        prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn job_ids_round_trip(id in job_id()) {
        prop_assert_eq!(&JobId::parse(&id.as_str().to_lowercase()).unwrap(), &id);
        prop_assert_eq!(JobId::parse(id.as_str()).unwrap(), id);
    }

    /// Whatever order events arrive in, a job only moves forward, ends at most once, and its
    /// record and views survive JSON.
    #[test]
    fn jobs_only_move_forward(id in job_id(), created in timestamp(), events in prop::collection::vec(event(), 0..12)) {
        let mut job = JobRecord::new(id, "acct", created);
        let mut ends = 0;
        for e in &events {
            let before = job.status;
            let t = job.apply(e);
            prop_assert!(job.status.rank() >= before.rank());
            match t {
                Transition::Applied { from, to } => {
                    prop_assert_eq!((from, to), (before, e.status()));
                }
                Transition::Repeated | Transition::Stale { .. } => prop_assert_eq!(job.status, before),
            }
            if t.ends_job() { ends += 1; }
        }
        prop_assert!(ends <= 1);
        prop_assert_eq!(ends == 1, job.status.is_terminal());
        if let (Some(s), Some(c)) = (job.started_at, job.completed_at) {
            prop_assert!(job.created_at <= s && s <= c);
        }
        let json = serde_json::to_string(&job).unwrap();
        prop_assert_eq!(&serde_json::from_str::<JobRecord>(&json).unwrap(), &job);
        let view = serde_json::to_string(&job.view()).unwrap();
        prop_assert_eq!(serde_json::from_str::<tailpdf_shared::JobView>(&view).unwrap(), job.view());
        prop_assert_eq!(job.status == JobStatus::Pending, job.started_at.is_none());
        if let Some(payload) = WebhookPayload::for_job(&job) {
            let msg = WebhookMessage { account: "acct".into(), url: SecretUrl::new("https://h.example/x"), payload: payload.into(), attempt: 3 };
            let json = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(serde_json::from_str::<WebhookMessage>(&json).unwrap(), msg);
        }
    }

    #[test]
    fn events_round_trip(e in event()) {
        let json = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<JobEvent>(&json).unwrap(), e);
    }

    #[test]
    fn render_job_messages_round_trip(id in job_id(), content in ".{1,200}", fonts in prop::collection::vec("(Inter|Roboto)(:wght@[1-9]00)?", 0..3)) {
        let body = serde_json::json!({"content": format!("x{content}"), "fonts": fonts});
        if let Ok(valid) = tailpdf_shared::parse_pdf_request(body.to_string().as_bytes(), UrlPolicy::PRODUCTION) {
            let msg = RenderJobMessage::new(id, "acct", SecretUrl::new("https://b.example/a.pdf?s=1"), &valid.spec);
            let json = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(serde_json::from_str::<RenderJobMessage>(&json).unwrap(), msg);
        }
    }
}

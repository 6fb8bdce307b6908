//! Each signature scheme checked against an independent implementation: the `openssl` command
//! line, and the published Standard Webhooks test vector.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::{io::Write, process::Command};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use tailpdf_shared::signing::{
    sign_internal, tailpdf_signature, verify_internal, verify_tailpdf_signature, StandardWebhookKey,
};

/// Raw HMAC-SHA256 of `data` keyed with `key`, computed by `openssl dgst`.
fn openssl_hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{}", hex::encode(key)))
        .arg("-binary")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl must be installed (scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 32);
    out.stdout
}

const BODY: &str = r#"{"event":"render.completed","job_id":"01JFXYZ123456789ABCDEFGH","timestamp":"2024-12-15T10:30:02Z","data":{"status":"completed","file_size_bytes":45678,"render_duration_ms":850,"upload_duration_ms":120}}"#;

#[test]
fn x_tailpdf_signature_matches_openssl_hmac_with_the_secret_as_text() {
    // The seed's Node verifier: createHmac('sha256', secret).update(body).digest('hex').
    let expected =
        format!("sha256={}", hex::encode(openssl_hmac(b"dev-webhook-secret", BODY.as_bytes())));
    assert_eq!(tailpdf_signature("dev-webhook-secret", BODY.as_bytes()), expected);
    assert!(verify_tailpdf_signature("dev-webhook-secret", BODY.as_bytes(), &expected).is_ok());
}

#[test]
fn x_tailpdf_signature_matches_openssl_hmac_flag_form() {
    // `openssl dgst -sha256 -hmac KEY` as a receiver would type it.
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", "whsec-or-anything"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello").unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let hex_digest = out.trim().rsplit(' ').next().unwrap();
    assert_eq!(tailpdf_signature("whsec-or-anything", b"hello"), format!("sha256={hex_digest}"));
}

#[test]
fn standard_webhooks_published_vector() {
    // The test vector of the Standard Webhooks specification and its reference libraries.
    let key = StandardWebhookKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let body = br#"{"test": 2432232314}"#;
    let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_eq!(key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body), expected);
    assert!(key
        .verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", expected, body, 1_614_265_330)
        .is_ok());
}

#[test]
fn standard_webhooks_with_a_plain_secret_matches_openssl() {
    let key = StandardWebhookKey::from_secret("dev-webhook-secret");
    let signed = format!("msg_01JFXYZ123456789ABCDEFGH_completed.1734258602.{BODY}");
    let expected =
        format!("v1,{}", BASE64.encode(openssl_hmac(b"dev-webhook-secret", signed.as_bytes())));
    assert_eq!(
        key.sign("msg_01JFXYZ123456789ABCDEFGH_completed", 1_734_258_602, BODY.as_bytes()),
        expected
    );
}

#[test]
fn internal_signature_matches_openssl() {
    let body = br#"{"status":"processing","at":"2024-12-15T10:30:01Z"}"#;
    let path = "/internal/jobs/01JFXYZ123456789ABCDEFGH/events";
    let mut signed = b"1734258601.POST ".to_vec();
    signed.extend_from_slice(path.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let expected =
        format!("t=1734258601,v1={}", hex::encode(openssl_hmac(b"internal-secret", &signed)));
    assert_eq!(sign_internal("internal-secret", 1_734_258_601, "POST", path, body), expected);
    assert!(verify_internal("internal-secret", Some(&expected), "POST", path, body, 1_734_258_700)
        .is_ok());
}

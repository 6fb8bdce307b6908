//! The three HMAC-SHA256 signatures of tailpdf, each with its verifier (constant time):
//!
//! - [`tailpdf_signature`]: TailPDF's `X-TailPDF-Signature: sha256=<hex>` over the raw body,
//!   keyed with the account's webhook secret as text (the seed's Node verifier).
//! - [`StandardWebhookKey`]: Standard Webhooks v1, `webhook-signature: v1,<base64>` over
//!   `"{id}.{timestamp}.{body}"`, so receivers can refuse replays and drop duplicates.
//! - [`sign_internal`] / [`verify_internal`]: `X-TailPDF-Internal: t=<unix>,v1=<hex>` over
//!   `"{t}.{METHOD} {path}.{body}"` for every edge ↔ renderer call, valid for 300 s.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::limits::{INTERNAL_SIGNATURE_WINDOW_SECS, WEBHOOK_TIMESTAMP_TOLERANCE_SECS};

type HmacSha256 = Hmac<Sha256>;

pub const TAILPDF_SIGNATURE_HEADER: &str = "X-TailPDF-Signature";
pub const INTERNAL_SIGNATURE_HEADER: &str = "X-TailPDF-Internal";

/// Why a signature was refused. Deliberately coarse: callers answer 401 whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing")]
    Missing,
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the allowed window")]
    OutsideWindow,
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts).finalize().into_bytes().into()
}

/// Constant-time check of `expected` (raw bytes) against the HMAC of `parts`.
fn verify_mac(key: &[u8], parts: &[&[u8]], expected: &[u8]) -> Result<(), SignatureError> {
    mac(key, parts).verify_slice(expected).map_err(|_| SignatureError::Mismatch)
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn tailpdf_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body])))
}

/// Verifies an `X-TailPDF-Signature` value.
pub fn verify_tailpdf_signature(
    secret: &str,
    body: &[u8],
    header: &str,
) -> Result<(), SignatureError> {
    let hex_part = header.trim().strip_prefix("sha256=").ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    verify_mac(secret.as_bytes(), &[body], &expected)
}

/// The key of Standard Webhooks signatures.
///
/// A secret written `whsec_<base64>` (the Standard Webhooks form) is decoded; any other secret
/// is used as its UTF-8 bytes, the same key `X-TailPDF-Signature` uses. A Standard Webhooks
/// library given `whsec_` + base64(secret) therefore verifies our deliveries.
#[derive(Clone)]
pub struct StandardWebhookKey(Vec<u8>);

impl std::fmt::Debug for StandardWebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandardWebhookKey(<redacted>)")
    }
}

impl StandardWebhookKey {
    pub fn from_secret(secret: &str) -> Self {
        match secret.strip_prefix("whsec_").map(|b| BASE64.decode(b)) {
            Some(Ok(bytes)) => Self(bytes),
            _ => Self(secret.as_bytes().to_vec()),
        }
    }

    /// The `whsec_...` form of this key, for Standard Webhooks libraries.
    pub fn to_whsec(&self) -> String {
        format!("whsec_{}", BASE64.encode(&self.0))
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        let sig = hmac_sha256(&self.0, &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", BASE64.encode(sig))
    }

    /// Verifies `webhook-id`, `webhook-timestamp`, `webhook-signature` (which may list several
    /// space-separated signatures) against `now`, refusing timestamps more than 5 minutes off.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| SignatureError::Malformed)?;
        if (now - ts).abs() > WEBHOOK_TIMESTAMP_TOLERANCE_SECS {
            return Err(SignatureError::OutsideWindow);
        }
        let parts: [&[u8]; 5] = [msg_id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body];
        let mut seen_v1 = false;
        for candidate in signatures.split_whitespace() {
            let Some(b64) = candidate.strip_prefix("v1,") else {
                continue;
            };
            seen_v1 = true;
            if let Ok(expected) = BASE64.decode(b64) {
                if verify_mac(&self.0, &parts, &expected).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(if seen_v1 { SignatureError::Mismatch } else { SignatureError::Malformed })
    }
}

/// `X-TailPDF-Internal` for a request `method path` with `body`, made at `now`.
/// `path` is the path and query as sent, e.g. `/internal/jobs/01J.../events`.
pub fn sign_internal(secret: &str, now: i64, method: &str, path: &str, body: &[u8]) -> String {
    let sig = hmac_sha256(secret.as_bytes(), &internal_parts(&now.to_string(), method, path, body));
    format!("t={now},v1={}", hex::encode(sig))
}

fn internal_parts<'a>(t: &'a str, method: &'a str, path: &'a str, body: &'a [u8]) -> [&'a [u8]; 7] {
    [t.as_bytes(), b".", method.as_bytes(), b" ", path.as_bytes(), b".", body]
}

/// Verifies an `X-TailPDF-Internal` header (absent: `None`) at `now`.
pub fn verify_internal(
    secret: &str,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => return Err(SignatureError::Malformed),
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(SignatureError::Malformed);
    };
    let ts: i64 = t.parse().map_err(|_| SignatureError::Malformed)?;
    let expected = hex::decode(v1).map_err(|_| SignatureError::Malformed)?;
    if (now - ts).abs() > INTERNAL_SIGNATURE_WINDOW_SECS {
        return Err(SignatureError::OutsideWindow);
    }
    verify_mac(secret.as_bytes(), &internal_parts(t, method, path, body), &expected)
}

/// How API keys are stored: the hex SHA-256 of the key, never the key itself.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailpdf_signature_round_trip_and_tamper() {
        let body = br#"{"event":"render.completed"}"#;
        let sig = tailpdf_signature("s3cret", body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_eq!(verify_tailpdf_signature("s3cret", body, &sig), Ok(()));
        assert_eq!(verify_tailpdf_signature("other", body, &sig), Err(SignatureError::Mismatch));
        assert_eq!(verify_tailpdf_signature("s3cret", b"{}", &sig), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_tailpdf_signature("s3cret", body, "md5=00"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_tailpdf_signature("s3cret", body, "sha256=zz"),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn standard_webhooks_accepts_any_of_several_signatures() {
        let key = StandardWebhookKey::from_secret("dev-webhook-secret");
        let good = key.sign("msg_1", 1_000, b"{}");
        let header = format!("v1,AAAA {good} v1a,ignored");
        assert_eq!(key.verify("msg_1", "1000", &header, b"{}", 1_000), Ok(()));
        assert_eq!(
            key.verify("msg_2", "1000", &header, b"{}", 1_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key.verify("msg_1", "1000", "v2,abc", b"{}", 1_000),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn standard_webhooks_refuses_old_and_future_timestamps() {
        let key = StandardWebhookKey::from_secret("k");
        let sig = key.sign("id", 1_000, b"x");
        assert_eq!(key.verify("id", "1000", &sig, b"x", 1_300), Ok(()));
        assert_eq!(key.verify("id", "1000", &sig, b"x", 1_301), Err(SignatureError::OutsideWindow));
        assert_eq!(key.verify("id", "1000", &sig, b"x", 699), Err(SignatureError::OutsideWindow));
        assert_eq!(key.verify("id", "soon", &sig, b"x", 1_000), Err(SignatureError::Malformed));
    }

    #[test]
    fn whsec_secrets_are_decoded_and_plain_ones_used_as_bytes() {
        let plain = StandardWebhookKey::from_secret("dev-webhook-secret");
        let encoded = StandardWebhookKey::from_secret(&plain.to_whsec());
        assert_eq!(plain.sign("a", 1, b"b"), encoded.sign("a", 1, b"b"));
        assert_eq!(format!("{plain:?}"), "StandardWebhookKey(<redacted>)");
    }

    #[test]
    fn internal_signatures() {
        let h = sign_internal("int", 5_000, "POST", "/internal/jobs/X/events", b"{}");
        let ok = |h: &str, now| {
            verify_internal("int", Some(h), "POST", "/internal/jobs/X/events", b"{}", now)
        };
        assert_eq!(ok(&h, 5_000), Ok(()));
        assert_eq!(ok(&h, 5_300), Ok(()));
        assert_eq!(ok(&h, 5_301), Err(SignatureError::OutsideWindow));
        assert_eq!(ok(&h, 4_699), Err(SignatureError::OutsideWindow));
        assert_eq!(
            verify_internal("int", Some(&h), "PUT", "/internal/jobs/X/events", b"{}", 5_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_internal("int", Some(&h), "POST", "/internal/jobs/Y/events", b"{}", 5_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_internal("int", Some(&h), "POST", "/internal/jobs/X/events", b"{ }", 5_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_internal("int", None, "POST", "/", b"", 0), Err(SignatureError::Missing));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "t=1,v1=00,x=1", "garbage"] {
            assert_eq!(ok(bad, 1), Err(SignatureError::Malformed), "{bad}");
        }
        // A shifted timestamp breaks the signature even inside the window.
        let shifted = h.replacen("t=5000", "t=5001", 1);
        assert_eq!(ok(&shifted, 5_000), Err(SignatureError::Mismatch));
    }

    #[test]
    fn api_keys_are_kept_as_their_sha256() {
        assert_eq!(hash_api_key("dev-api-key"), hex::encode(Sha256::digest(b"dev-api-key")));
    }
}

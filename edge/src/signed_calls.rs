//! Calls between the edge and its renderers, and the operator's: signed with a shared secret
//! (`X-TailPDF-Internal`), checked here.

use tailpdf_shared::{
    signing::{sign_internal, verify_internal, INTERNAL_SIGNATURE_HEADER},
    ApiError,
};

use crate::config::EdgeConfig;

/// A call's `X-TailPDF-Internal` under `secret`; 401 saying `required` otherwise.
fn verify_signed(
    secret: &str,
    required: &str,
    (header, method, path, body, now): (Option<&str>, &str, &str, &[u8], i64),
) -> Result<(), ApiError> {
    verify_internal(secret, header, method, path, body, now).map_err(|e| {
        ApiError::unauthorized(format!("{INTERNAL_SIGNATURE_HEADER} {required}: {e}."))
    })
}

/// Checks an internal call's `X-TailPDF-Internal`; 401 otherwise.
pub fn verify_internal_call(
    cfg: &EdgeConfig,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let call = (header, method, path, body, now);
    verify_signed(&cfg.internal_secret, "is required and must be valid", call)
}

/// Checks an operator's call (`/internal/dead-letters…`): signed like an internal call, but
/// with `ADMIN_SECRET`, which no renderer holds; refused when that is not set.
pub fn verify_admin_call(
    cfg: &EdgeConfig,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), ApiError> {
    let secret = cfg.admin_secret.as_deref().ok_or_else(|| {
        ApiError::unauthorized("The operator's endpoints are off: set the Worker's ADMIN_SECRET.")
    })?;
    let call = (header, method, path, body, now);
    verify_signed(secret, "signed with the admin secret is required", call)
}

/// A signed call to the renderer at `origin`: its URL and the signature header's value.
pub fn renderer_call(
    cfg: &EdgeConfig,
    origin: &str,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> (String, String) {
    let url = format!("{}{path}", origin.trim_end_matches('/'));
    (url, sign_internal(&cfg.internal_secret, now, method, path, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::cfg;

    #[test]
    fn internal_calls_are_signed() {
        let c = cfg();
        let (url, sig) = renderer_call(&c, &c.renderers[0], "POST", "/jobs", b"{}", 1000);
        assert_eq!(url, "http://127.0.0.1:3000/jobs");
        assert!(verify_internal_call(&c, Some(&sig), "POST", "/jobs", b"{}", 1000).is_ok());
        assert_eq!(
            verify_internal_call(&c, None, "POST", "/jobs", b"{}", 1000).unwrap_err().status(),
            401
        );
        assert_eq!(
            verify_internal_call(&c, Some(&sig), "POST", "/jobs", b"{}", 2000)
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn operator_calls_need_the_admin_secret_not_the_renderer_s() {
        let path = "/internal/dead-letters";
        let mut c = cfg();
        let by_renderer = sign_internal(&c.internal_secret, 1000, "GET", path, b"");
        let e = verify_admin_call(&c, Some(&by_renderer), "GET", path, b"", 1000).unwrap_err();
        assert!(e.message.contains("ADMIN_SECRET"), "off while unset: {}", e.message);
        c.admin_secret = Some("admin".into());
        let e = verify_admin_call(&c, Some(&by_renderer), "GET", path, b"", 1000).unwrap_err();
        assert_eq!(e.status(), 401, "the renderer's secret is not enough");
        let by_admin = sign_internal("admin", 1000, "GET", path, b"");
        assert!(verify_admin_call(&c, Some(&by_admin), "GET", path, b"", 1000).is_ok());
        assert!(verify_internal_call(&c, Some(&by_admin), "GET", path, b"", 1000).is_err());
    }
}

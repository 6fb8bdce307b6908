//! The tailpdf edge: the public API as a Cloudflare Worker (Rust compiled to wasm).
//!
//! Plain-Rust modules hold the edge's logic and are tested natively; the Worker glue in
//! `worker_glue` exists only on wasm32 and stays thin.

#[cfg(target_arch = "wasm32")]
mod worker_glue;

use tailpdf_shared::ApiError;

/// The answer to every request until the API lands (issue #5): an honest 503 in the API's
/// error shape rather than a route that pretends to work.
pub fn not_built_yet() -> ApiError {
    ApiError::unavailable(
        "tailpdf's edge API is not built yet: POST /pdf and GET /jobs/{id} arrive with issue #5.",
        3600,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn not_built_yet_is_a_503_with_the_error_body() {
        let e = super::not_built_yet();
        assert_eq!(e.status(), 503);
        assert!(e.to_json().starts_with(r#"{"error":"service_unavailable","message":"#));
    }
}

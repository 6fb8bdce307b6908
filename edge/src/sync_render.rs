//! What the renderer's answer to a sync render (`POST /pdf` without `upload_url`) means for the
//! client: the PDF, or the error the client gets. The Worker glue only carries the bytes.
//!
//! The renderer answers in the API's own error shape. What is about the document (400, 413,
//! a render that failed) reaches the client as the renderer said it; what is about the
//! service (busy, refusing the edge's signature, an answer in no known shape) is a 503 the
//! client can wait out, with the renderer's `Retry-After` when it gave one.

use tailpdf_shared::{ApiError, ErrorBody, ErrorCode};

use crate::consumers::Answer;

/// `Retry-After` of a busy renderer that did not say.
pub const BUSY_RETRY_AFTER_SECS: u32 = 2;

/// `Retry-After` while the renderer refuses the edge's calls: an operator has to mend it.
pub const REFUSED_RETRY_AFTER_SECS: u32 = 30;

/// `Ok` when `body` is the PDF; else the client's error.
pub fn judge(answer: &Answer, body: &[u8]) -> Result<(), ApiError> {
    let status = answer.status;
    if status == 200 {
        return Ok(());
    }
    let retry_after = answer.retry_after.filter(|&secs| secs > 0);
    if refused(status) {
        return Err(ApiError::unavailable(
            "The renderer is not taking this service's requests right now; retry later.",
            retry_after.unwrap_or(REFUSED_RETRY_AFTER_SECS),
        ));
    }
    let Ok(ErrorBody { error, message }) = serde_json::from_slice::<ErrorBody>(body) else {
        return Err(ApiError { retry_after_secs: retry_after.or(Some(5)), ..unreachable() });
    };
    let busy_after = retry_after.unwrap_or(BUSY_RETRY_AFTER_SECS);
    Err(match status {
        400 => ApiError::new(document_code(&error).unwrap_or(ErrorCode::ValidationError), message),
        413 => ApiError::new(ErrorCode::PayloadTooLarge, message),
        429 => ApiError::rate_limited(message, busy_after),
        500 => ApiError::new(ErrorCode::RenderFailed, message),
        503 => ApiError::unavailable(message, busy_after),
        _ => ApiError { retry_after_secs: Some(busy_after), ..unreachable() },
    })
}

/// A renderer's answer that sends a sync render on to the next renderer: it is full (503, or
/// 429 for the account's share of it) or still starting (503).
pub fn try_next(status: u16) -> bool {
    matches!(status, 429 | 503)
}

/// The renderer refused the edge itself (their `INTERNAL_SECRET`s differ): logged for the
/// operator, never shown to the client.
pub fn refused(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// A 400's code as the renderer gave it, when it is one about the document.
fn document_code(error: &str) -> Option<ErrorCode> {
    [ErrorCode::InvalidJson, ErrorCode::ValidationError, ErrorCode::UrlNotAllowed]
        .into_iter()
        .find(|code| code.as_str() == error)
}

/// No whole answer from the renderer within the deadline (or none at all).
pub fn unreachable() -> ApiError {
    ApiError::unavailable("The renderer is unavailable or busy; retry shortly.", 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<u32>) -> Answer {
        Answer { status, retry_after }
    }

    fn error_body(code: &str, message: &str) -> Vec<u8> {
        serde_json::to_vec(&ErrorBody { error: code.into(), message: message.into() }).unwrap()
    }

    #[test]
    fn a_full_or_starting_renderer_sends_the_render_on() {
        assert!(try_next(503) && try_next(429));
        for status in [200, 400, 401, 413, 500, 502] {
            assert!(!try_next(status), "{status}");
        }
    }

    #[test]
    fn a_pdf_passes_and_the_document_s_own_errors_reach_the_client() {
        assert!(judge(&answer(200, None), b"%PDF-1.7").is_ok());
        let e = judge(&answer(400, None), &error_body("validation_error", "content is empty"))
            .unwrap_err();
        assert_eq!((e.status(), e.message.as_str()), (400, "content is empty"));
        let e = judge(&answer(500, None), &error_body("render_failed", "Chromium crashed"))
            .unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::RenderFailed, "Chromium crashed"));
        let e = judge(&answer(502, None), b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(e.status(), 503);
    }

    #[test]
    fn a_renderer_that_refuses_the_edge_s_signature_is_unavailable_not_a_render_failure() {
        // The Worker's INTERNAL_SECRET and the renderer's differ: the operator's problem, which
        // the client can only wait out; the renderer's words about signatures are not theirs.
        let refusal = error_body(
            "unauthorized",
            "X-TailPDF-Internal is required and must be valid: the signature does not match.",
        );
        for status in [401, 403] {
            let e = judge(&answer(status, None), &refusal).unwrap_err();
            assert_eq!((e.status(), e.code), (503, ErrorCode::ServiceUnavailable), "{status}");
            assert!(!e.message.contains("X-TailPDF-Internal"), "{}", e.message);
            assert!(e.retry_after_secs.is_some());
        }
    }

    #[test]
    fn the_renderer_s_retry_after_reaches_the_client() {
        let busy = error_body("service_unavailable", "Every tab and queue place is taken.");
        let e = judge(&answer(503, Some(17)), &busy).unwrap_err();
        assert_eq!((e.status(), e.retry_after_secs), (503, Some(17)));
        let e =
            judge(&answer(429, Some(9)), &error_body("rate_limited", "Slow down.")).unwrap_err();
        assert_eq!((e.status(), e.retry_after_secs), (429, Some(9)));
        // Without one, a default: a client that retries at once would only find it busy again.
        let e = judge(&answer(503, None), &busy).unwrap_err();
        assert!(e.retry_after_secs.is_some_and(|s| s > 0));
    }
}

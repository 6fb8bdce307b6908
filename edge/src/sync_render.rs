//! What the renderer's answer to a sync render (`POST /pdf` without `upload_url`) means for the
//! client: the PDF, or the error the client gets. The Worker glue only carries the bytes.

use tailpdf_shared::{ApiError, ErrorBody, ErrorCode};

use crate::consumers::Answer;

/// `Ok` when `body` is the PDF; else the client's error.
pub fn judge(answer: &Answer, body: &[u8]) -> Result<(), ApiError> {
    let status = answer.status;
    if status == 200 {
        return Ok(());
    }
    // The renderer answers in the API's own error shape; pass it on.
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) if status == 400 => Err(ApiError::validation(body.message)),
        Ok(body) if status == 503 => Err(ApiError::unavailable(body.message, 2)),
        Ok(body) => Err(ApiError::new(ErrorCode::RenderFailed, body.message)),
        Err(_) => Err(unreachable()),
    }
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
}

//! Uploading the PDF to the caller's presigned URL: `PUT` with `Content-Type: application/pdf`
//! and `Content-Length`, retried on 5xx, 408, 429 and connection errors with backoff and jitter
//! within a total budget; any other 4xx is final and reported as the seed writes it
//! (`Upload failed: 403 Forbidden`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tailpdf_shared::messages::SecretUrl;

use super::{
    error::ServiceError,
    retry::{backoff, jitter},
};
use crate::net::{FetchError, GuardedFetcher};

#[derive(Debug, Clone, Copy)]
pub struct UploadPolicy {
    /// Deadline of one attempt.
    pub attempt_timeout: Duration,
    /// Time after which no further attempt starts.
    pub budget: Duration,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

/// What one attempt came to: done, or why not (retryable or not, as the error says).
fn judge(result: Result<reqwest::StatusCode, FetchError>) -> Result<(), ServiceError> {
    match result {
        Ok(status) if status.is_success() => Ok(()),
        Ok(status) if status.is_server_error() || matches!(status.as_u16(), 408 | 429) => {
            Err(ServiceError::UploadStatus(status))
        }
        Ok(status) => Err(ServiceError::UploadRejected(status)),
        Err(FetchError::Blocked(why)) => Err(ServiceError::UploadBlocked(why)),
        Err(FetchError::Timeout(t)) => Err(ServiceError::UploadTimeout(t)),
        Err(e) => Err(ServiceError::UploadFailed(e)),
    }
}

/// Uploads `pdf`; the error's text is the job's `error_message`.
pub async fn upload(
    fetcher: &GuardedFetcher,
    url: &SecretUrl,
    pdf: Bytes,
    policy: UploadPolicy,
) -> Result<(), ServiceError> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result =
            fetcher.put(url.expose(), "application/pdf", pdf.clone(), policy.attempt_timeout).await;
        let problem = match judge(result) {
            Ok(()) => return Ok(()),
            Err(e) if !e.retryable() => return Err(e),
            Err(e) => e,
        };
        let delay = backoff(attempt, policy.base_delay, policy.max_delay, jitter());
        if started.elapsed() + delay >= policy.budget {
            return Err(ServiceError::GaveUp { attempts: attempt, last: Box::new(problem) });
        }
        tracing::info!(attempt, url = %url, %problem, ?delay, "upload will be retried");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn text(result: Result<(), ServiceError>) -> (&'static str, String) {
        match result {
            Ok(()) => ("done", String::new()),
            Err(e) if e.retryable() => ("retry", e.to_string()),
            Err(e) => ("final", e.to_string()),
        }
    }

    #[test]
    fn statuses_are_judged_as_the_seed_reports_them() {
        assert_eq!(text(judge(Ok(StatusCode::OK))).0, "done");
        assert_eq!(
            text(judge(Ok(StatusCode::FORBIDDEN))),
            ("final", "Upload failed: 403 Forbidden".into())
        );
        assert_eq!(
            text(judge(Ok(StatusCode::NOT_FOUND))),
            ("final", "Upload failed: 404 Not Found".into())
        );
        assert_eq!(
            text(judge(Ok(StatusCode::INTERNAL_SERVER_ERROR))),
            ("retry", "Upload failed: 500 Internal Server Error".into())
        );
        assert_eq!(text(judge(Ok(StatusCode::TOO_MANY_REQUESTS))).0, "retry");
        assert_eq!(text(judge(Ok(StatusCode::REQUEST_TIMEOUT))).0, "retry");
        assert_eq!(text(judge(Err(FetchError::Blocked("no".into())))).0, "final");
        assert_eq!(text(judge(Err(FetchError::Failed("refused".into())))).0, "retry");
    }
}

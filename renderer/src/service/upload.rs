//! Uploading the PDF to the caller's presigned URL: `PUT` with `Content-Type: application/pdf`
//! and `Content-Length`, retried on 5xx, 408, 429 and connection errors with backoff and jitter
//! within a total budget; any other 4xx is final and reported as the seed writes it
//! (`Upload failed: 403 Forbidden`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tailpdf_shared::messages::SecretUrl;

use super::retry::{backoff, jitter};
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

/// What one attempt came to.
enum Attempt {
    Done,
    Final(String),
    Retry(String),
}

fn judge(result: Result<reqwest::StatusCode, FetchError>) -> Attempt {
    match result {
        Ok(status) if status.is_success() => Attempt::Done,
        Ok(status) => {
            let text = format!(
                "Upload failed: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            let text = text.trim_end().to_owned();
            if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
                Attempt::Retry(text)
            } else {
                Attempt::Final(text)
            }
        }
        Err(FetchError::Blocked(why)) => Attempt::Final(format!("Upload failed: {why}")),
        Err(FetchError::Timeout(t)) => {
            Attempt::Retry(format!("Upload failed: no answer within {t:?}"))
        }
        Err(e) => Attempt::Retry(format!("Upload failed: {e}")),
    }
}

/// Uploads `pdf`; the error is the message for the job's `error_message`.
pub async fn upload(
    fetcher: &GuardedFetcher,
    url: &SecretUrl,
    pdf: Bytes,
    policy: UploadPolicy,
) -> Result<(), String> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result =
            fetcher.put(url.expose(), "application/pdf", pdf.clone(), policy.attempt_timeout).await;
        let last = match judge(result) {
            Attempt::Done => return Ok(()),
            Attempt::Final(text) => return Err(text),
            Attempt::Retry(text) => text,
        };
        let delay = backoff(attempt, policy.base_delay, policy.max_delay, jitter());
        if started.elapsed() + delay >= policy.budget {
            return Err(format!("{last} (after {attempt} attempts)"));
        }
        tracing::info!(attempt, url = %url, problem = %last, ?delay, "upload will be retried");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn text(a: Attempt) -> (&'static str, String) {
        match a {
            Attempt::Done => ("done", String::new()),
            Attempt::Final(t) => ("final", t),
            Attempt::Retry(t) => ("retry", t),
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

//! The service's errors: calls to the edge, uploads and the queue API. None of them is shown
//! to an API client as is: an upload's becomes the job's `error_message` (its text is the one
//! the seed documents, e.g. `Upload failed: 403 Forbidden`), the others are retry reasons and
//! log lines. Causes are kept as sources.

use std::time::Duration;

use reqwest::StatusCode;
use tailpdf_shared::JobStatus;

use crate::net::{FetchError, GuardBuildError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// An HTTP client of the service could not be built: the service does not start.
    #[error("the HTTP client for {what} could not be built")]
    Client {
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Guard(#[from] GuardBuildError),

    /// The edge refuses an event for good (unknown job, bad signature).
    #[error("the edge refused the {event} event: {status}")]
    EventRefused { event: JobStatus, status: StatusCode },
    #[error("the edge answered {0}")]
    EdgeStatus(StatusCode),
    #[error("the edge did not answer ({})", causes(.0))]
    EdgeUnreachable(#[source] reqwest::Error),
    #[error("the edge's answer could not be read ({})", causes(.0))]
    EdgeAnswer(#[source] reqwest::Error),
    #[error("a path of the edge: {0}")]
    EdgePath(#[source] url::ParseError),
    #[error("an event could not be encoded: {0}")]
    Encode(#[source] serde_json::Error),

    /// The upload URL's server answered with a final error status.
    #[error("Upload failed: {}", status_text(*.0))]
    UploadRejected(StatusCode),
    /// The upload URL's server answered with a status worth another try.
    #[error("Upload failed: {}", status_text(*.0))]
    UploadStatus(StatusCode),
    #[error("Upload failed: {0}")]
    UploadBlocked(String),
    #[error("Upload failed: no answer within {0:?}")]
    UploadTimeout(Duration),
    #[error("Upload failed: {0}")]
    UploadFailed(#[source] FetchError),

    #[error("the queue API did not answer ({})", causes(.0))]
    QueueUnreachable(#[source] reqwest::Error),
    #[error("the queue API answered {status}: {detail}")]
    QueueRefused { status: StatusCode, detail: String },
    #[error("the queue API cannot take a path under its base URL")]
    QueueBase,
    #[error("message {id} is not a render job: {source}")]
    NotAJob {
        id: String,
        #[source]
        source: serde_json::Error,
    },

    /// The last failure of a call retried until its budget ran out.
    #[error("{last} (after {attempts} attempts)")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<ServiceError>,
    },
}

impl ServiceError {
    /// Whether another attempt of the same call may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::EdgeStatus(_)
            | Self::EdgeUnreachable(_)
            | Self::UploadStatus(_)
            | Self::UploadTimeout(_)
            | Self::UploadFailed(_)
            | Self::QueueUnreachable(_) => true,
            Self::GaveUp { .. }
            | Self::Client { .. }
            | Self::Guard(_)
            | Self::EventRefused { .. }
            | Self::EdgeAnswer(_)
            | Self::EdgePath(_)
            | Self::Encode(_)
            | Self::UploadRejected(_)
            | Self::UploadBlocked(_)
            | Self::QueueRefused { .. }
            | Self::QueueBase
            | Self::NotAJob { .. } => false,
        }
    }
}

/// `403 Forbidden`, as the seed writes upload failures.
fn status_text(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")).trim_end().to_owned()
}

/// reqwest's own message names the URL, whose query may hold a signature: only its causes.
fn causes(e: &reqwest::Error) -> String {
    let mut out = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    if out.is_empty() {
        String::from("no response")
    } else {
        out.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_failures_read_as_the_seed_writes_them() {
        assert_eq!(
            ServiceError::UploadRejected(StatusCode::FORBIDDEN).to_string(),
            "Upload failed: 403 Forbidden"
        );
        let gave_up = ServiceError::GaveUp {
            attempts: 3,
            last: Box::new(ServiceError::UploadStatus(StatusCode::INTERNAL_SERVER_ERROR)),
        };
        assert_eq!(
            gave_up.to_string(),
            "Upload failed: 500 Internal Server Error (after 3 attempts)"
        );
        assert!(std::error::Error::source(&gave_up).is_some(), "the cause is kept");
        assert!(!gave_up.retryable());
    }
}

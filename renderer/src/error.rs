//! The renderer's error type, and how it maps onto the API's `{"error","message"}` body.

use std::time::Duration;

use tailpdf_shared::{ApiError, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// The request itself is at fault (e.g. a Tailwind config the compiler rejects).
    #[error("{0}")]
    BadInput(String),
    /// The render ran past its deadline; the tab was killed. Usually the document's own doing
    /// (a script that never ends), so not retried.
    #[error("the render did not finish within {0:?} (check scripts and resources in the content)")]
    Timeout(Duration),
    /// A font in `fonts` could not be had from the fonts API.
    #[error("{0}")]
    Font(String),
    /// Chromium died or stopped answering during the render; another try may well succeed.
    #[error("Chromium failed during the render: {0}")]
    Browser(String),
    /// The engine is shutting down and takes no more renders.
    #[error("the renderer is shutting down")]
    ShuttingDown,
    /// Every tab is busy and the wait for one ran out.
    #[error("all {0} tabs are busy")]
    Busy(usize),
}

impl RenderError {
    /// Whether the same render may succeed if tried again (on this or another renderer).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Font(_) | Self::Browser(_) | Self::ShuttingDown | Self::Busy(_))
    }

    /// The public error for this failure.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::BadInput(m) => ApiError::validation(m.clone()),
            Self::ShuttingDown | Self::Busy(_) => {
                ApiError::unavailable(format!("{self}; retry shortly."), 2)
            }
            _ => ApiError::new(ErrorCode::RenderFailed, format!("Render failed: {self}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_failures_and_their_statuses() {
        let cases = [
            (RenderError::BadInput("`config.theme` ...".into()), false, 400),
            (RenderError::Timeout(Duration::from_secs(30)), false, 500),
            (RenderError::Font("Font \"Inter\" ...".into()), true, 500),
            (RenderError::Browser("crashed".into()), true, 500),
            (RenderError::ShuttingDown, true, 503),
            (RenderError::Busy(2), true, 503),
        ];
        for (e, retryable, status) in cases {
            assert_eq!(e.retryable(), retryable, "{e}");
            assert_eq!(e.to_api_error().status(), status, "{e}");
        }
        assert!(RenderError::Timeout(Duration::from_secs(30))
            .to_api_error()
            .message
            .starts_with("Render failed: the render did not finish within 30s"));
    }
}

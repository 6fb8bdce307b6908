//! The renderer's error type, and how it maps onto the API's `{"error","message"}` body.

use std::time::Duration;

use tailpdf_shared::{ApiError, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    /// The request itself is at fault (e.g. a Tailwind config the compiler rejects).
    #[error("{0}")]
    BadInput(String),
    /// The render ran past its deadline; the tab was closed and its print stopped. Usually the
    /// document's own doing (a script that never ends, a layout too costly), so not retried.
    #[error(
        "the render did not finish within {0:?}, the limit of --render-timeout: loading, layout \
         and printing all count (check the content's scripts, resources and size)"
    )]
    Timeout(Duration),
    /// A font in `fonts` could not be had from the fonts API.
    #[error("{0}")]
    Font(String),
    /// Chromium died or stopped answering during the render; another try may well succeed.
    #[error("Chromium failed during the render: {0}")]
    Browser(String),
    /// Chromium refused to print the document it had laid out (what it said is kept); the
    /// same document fails the same way, so not retried.
    #[error(
        "Chromium could not print the document ({0}). Documents nested very deep or laid out \
         very large can fail so; so can a header or footer template that loads a stylesheet or \
         a font"
    )]
    PrintFailed(String),
    /// The engine is shutting down and takes no more renders.
    #[error("the renderer is shutting down")]
    ShuttingDown,
    /// The document needs more than a render may use; not retried.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// A step after the print (metadata, PDF/A, encryption) failed or ran out of time; not
    /// retried (the same PDF would fail the same way).
    #[error("{0}")]
    PostProcess(String),
}

/// A limit of one render that was crossed; the message names the flag that sets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "the document made more than {0} requests (images, stylesheets, fonts, frames); the \
         limit is --max-requests"
    )]
    Requests(u32),
    #[error("the document loaded more than {} of resources; the limit is --max-render-bytes", mib(*.0))]
    RenderBytes(u64),
    #[error("a resource of the document is larger than {}; the limit is --max-resource-bytes", mib(*.0))]
    ResourceBytes(u64),
    #[error("the PDF has more than {0} pages; the limit is --max-pages")]
    Pages(u32),
    #[error("the PDF is larger than {}; the limit is --max-pdf-bytes", mib(*.0))]
    PdfBytes(u64),
    #[error(
        "the document uses {used} distinct class names, more than {limit}; the limit is \
         --max-classes"
    )]
    Classes { used: usize, limit: usize },
    #[error("the Tailwind CSS for the document is larger than {}; the limit is --max-css-bytes", mib(*.0))]
    CssBytes(u64),
    #[error(
        "generating the Tailwind CSS for the document took longer than {0:?}; the limit is \
         --compiler-timeout"
    )]
    CompilerTime(Duration),
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

impl RenderError {
    /// Whether the same render may succeed if tried again (on this or another renderer).
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Font(_) | Self::Browser(_) | Self::ShuttingDown)
    }

    /// What a client is told: the failure in its own terms. What Chromium said is internal
    /// (it goes to the log, with the job); the client learns that the browser failed.
    pub fn public_message(&self) -> String {
        match self {
            Self::Browser(_) => String::from("the browser failed during the render; retry shortly"),
            other => other.to_string(),
        }
    }

    /// The public error for this failure.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::BadInput(m) => ApiError::validation(m.clone()),
            // The document's own size or needs, whoever renders it: a 400, not worth a retry.
            Self::Limit(limit) => ApiError::validation(format!(
                "The document is over a limit of the renderer: {limit}."
            )),
            Self::ShuttingDown => ApiError::unavailable(format!("{self}; retry shortly."), 2),
            _ => ApiError::new(
                ErrorCode::RenderFailed,
                format!("Render failed: {}", self.public_message()),
            ),
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
            (RenderError::Limit(LimitExceeded::Pages(3)), false, 400),
            (RenderError::PrintFailed("Printing failed".into()), false, 500),
            (RenderError::PostProcess("the encrypt step failed: ...".into()), false, 500),
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

    #[test]
    fn what_chromium_said_stays_internal() {
        let e = RenderError::Browser("Target.closeTarget: -32000 No target with given id".into());
        let public = e.to_api_error().message;
        assert_eq!(public, "Render failed: the browser failed during the render; retry shortly");
        assert!(!e.public_message().contains("-32000"));
        assert!(e.to_string().contains("-32000"), "the log still has it");
    }

    #[test]
    fn limits_name_their_flag() {
        assert!(LimitExceeded::RenderBytes(100 << 20).to_string().contains("100 MiB"));
        assert!(LimitExceeded::Pages(5).to_string().ends_with("--max-pages"));
        let classes = LimitExceeded::Classes { used: 30_000, limit: 20_000 }.to_string();
        assert!(classes.contains("30000") && classes.contains("--max-classes"), "{classes}");
        // The document's own size or needs: a 400 that names the limit, not a failure to
        // retry.
        let api = RenderError::from(LimitExceeded::PdfBytes(1 << 20)).to_api_error();
        assert_eq!((api.status(), api.code), (400, tailpdf_shared::ErrorCode::ValidationError));
        assert_eq!(
            api.message,
            "The document is over a limit of the renderer: the PDF is larger than 1 MiB; the \
             limit is --max-pdf-bytes."
        );
    }
}

//! The edge's one error type, and the one place it becomes the API's error body
//! (`From<EdgeError> for ApiError`), used only at the HTTP boundary (`worker_glue`).

use tailpdf_shared::ApiError;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EdgeError {
    /// A rule refused the request: the API's own answer (validation, 401, 409, 429, ...).
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Refused(ApiError),
    /// No such job or batch for this caller, or no longer: 404, saying this.
    #[error("unknown: {0}")]
    Unknown(String),
    /// What the edge keeps could not be read or written (KV, a queue, a Durable Object).
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// Something the request needs cannot be asked right now: 503 with `Retry-After`.
    #[error("unavailable: {message}")]
    Unavailable { message: String, retry_after_secs: u32 },
}

impl EdgeError {
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self::Unavailable { message: message.into(), retry_after_secs }
    }

    /// The status the client is answered with.
    pub fn status(&self) -> u16 {
        ApiError::from(self.clone()).status()
    }
}

impl From<ApiError> for EdgeError {
    fn from(e: ApiError) -> Self {
        Self::Refused(e)
    }
}

impl From<EdgeError> for ApiError {
    fn from(e: EdgeError) -> Self {
        match e {
            EdgeError::Refused(e) => e,
            EdgeError::Unknown(message) => ApiError::not_found(message),
            EdgeError::Storage(e) => ApiError::unavailable(
                format!("Job storage is unavailable ({}); retry shortly.", e.0),
                5,
            ),
            EdgeError::Unavailable { message, retry_after_secs } => {
                ApiError::unavailable(message, retry_after_secs)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_answered_with_its_status_and_says_what_to_do() {
        let unknown = ApiError::from(EdgeError::Unknown("No job x.".into()));
        assert_eq!((unknown.status(), unknown.message.as_str()), (404, "No job x."));
        let down = ApiError::from(EdgeError::Storage(StoreError("KV timed out".into())));
        assert_eq!((down.status(), down.retry_after_secs), (503, Some(5)));
        assert!(down.message.contains("retry"), "{}", down.message);
        let refused = ApiError::validation("content is required");
        assert_eq!(ApiError::from(EdgeError::from(refused.clone())), refused);
    }
}

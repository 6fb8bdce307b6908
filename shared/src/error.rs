//! The API's error: a code, a status and a message that says what is wrong and how to fix it.
//! Every failure the public API reports goes out as [`ErrorBody`], `{"error","message"}`.

use serde::{Deserialize, Serialize};

/// Machine-readable error codes (the `error` field of the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not JSON.
    InvalidJson,
    /// A field is missing, of the wrong type or out of range.
    ValidationError,
    /// `upload_url` or `webhook_url` points at a private, loopback or metadata address.
    UrlNotAllowed,
    /// `X-API-Key` missing or unknown.
    Unauthorized,
    /// No such job for this account (or it expired), or no such endpoint.
    NotFound,
    /// The path exists but not with this method (see `Allow`).
    MethodNotAllowed,
    /// The same `Idempotency-Key` came with another body.
    IdempotencyConflict,
    /// The body or `content` is over the limit.
    PayloadTooLarge,
    /// Too many requests: slow down (see `Retry-After`).
    RateLimited,
    /// Chromium could not render the document.
    RenderFailed,
    /// Something on our side failed; the message says what to do.
    InternalError,
    /// Overloaded or a dependency is down: retry after `Retry-After`.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidJson | Self::ValidationError | Self::UrlNotAllowed => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IdempotencyConflict => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::RenderFailed | Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
        }
    }

    /// The code as it appears in the body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::ValidationError => "validation_error",
            Self::UrlNotAllowed => "url_not_allowed",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::RenderFailed => "render_failed",
            Self::InternalError => "internal_error",
            Self::ServiceUnavailable => "service_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error the API reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after_secs: Option<u32>,
    /// The methods for `Allow` (405).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_secs: None, allow: None }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(ErrorCode::ServiceUnavailable, message)
        }
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("{method} is not allowed on {path}: use {allow}."),
            )
        }
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self {
            retry_after_secs: Some(retry_after_secs),
            ..Self::new(ErrorCode::RateLimited, message)
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.code.as_str().to_owned(), message: self.message.clone() }
    }

    /// The response body as JSON text.
    pub fn to_json(&self) -> String {
        // A struct of two strings always serializes.
        serde_json::to_string(&self.body()).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The error body of every failed public request: `{"error": "<code>", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

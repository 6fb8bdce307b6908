//! Small helpers over chromiumoxide's CDP calls.

use std::time::Duration;

use chromiumoxide::{
    cdp::js_protocol::runtime::{EvaluateParams, EvaluateReturns},
    Page,
};

use serde_json::Value;

use crate::error::RenderError;

/// Evaluates `expression` in `page` within `timeout`, awaiting a promise it returns.
pub(crate) async fn evaluate(
    page: &Page,
    expression: String,
    timeout: Duration,
    what: &str,
) -> Result<EvaluateReturns, RenderError> {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .map_err(RenderError::Browser)?;
    let response = tokio::time::timeout(timeout, page.execute(params))
        .await
        .map_err(|_| RenderError::Browser(format!("{what} did not answer in time")))?
        .map_err(|e| RenderError::Browser(format!("{what}: {e}")))?;
    Ok(response.result)
}

/// Evaluates a script of ours in a document and reads its answer as `T`; the caller's
/// deadline bounds it.
pub(crate) async fn evaluate_as<T: serde::de::DeserializeOwned>(
    page: &Page,
    expression: String,
) -> Result<T, RenderError> {
    let answer = evaluate(page, expression, Duration::from_secs(3600), "the page").await?;
    if let Some(ex) = &answer.exception_details {
        return Err(RenderError::Browser(format!("page script failed: {}", ex.text)));
    }
    let value = answer.result.value.unwrap_or(Value::Null);
    serde_json::from_value(value)
        .map_err(|e| RenderError::Browser(format!("unexpected answer: {e}")))
}

/// A CDP failure as a render error (Chromium's side: worth another try).
pub(crate) fn cdp_error(e: chromiumoxide::error::CdpError) -> RenderError {
    RenderError::Browser(e.to_string())
}

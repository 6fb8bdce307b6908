//! Small helpers over chromiumoxide's CDP calls.

use std::time::Duration;

use chromiumoxide::{
    cdp::js_protocol::runtime::{EvaluateParams, EvaluateReturns},
    Page,
};

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

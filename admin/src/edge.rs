//! The edge's operator endpoints (`/internal/dead-letters…`), signed with the Worker's
//! `ADMIN_SECRET` the way the renderer signs its calls with `INTERNAL_SECRET`.

use std::time::Duration;

use tailpdf_edge::dead_letters::{DeadLetterView, ReplayOutcome, ReplayRequest};
use tailpdf_shared::signing::{sign_internal, INTERNAL_SIGNATURE_HEADER};

use crate::AdminError;

/// The edge at `url` (its origin), called with `secret`.
pub struct EdgeAdmin {
    pub url: String,
    pub secret: String,
    pub timeout: Duration,
}

impl EdgeAdmin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<String, AdminError> {
        let failed = |e: String| AdminError::Edge(format!("{method} {path}: {e}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| failed(e.to_string()))?
            .as_secs();
        let now = i64::try_from(now).map_err(|e| failed(e.to_string()))?;
        let signature = sign_internal(&self.secret, now, method.as_str(), path, &body);
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let answer = client
            .request(method.clone(), format!("{}{path}", self.url.trim_end_matches('/')))
            .header(INTERNAL_SIGNATURE_HEADER, signature)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = answer.status();
        let text = answer.text().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            // The edge's {"error","message"}: its message says what to fix.
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(String::from))
                .unwrap_or(text);
            return Err(failed(format!("{status}: {message}")));
        }
        Ok(text)
    }

    /// Every dead-lettered webhook the edge keeps, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterView>, AdminError> {
        let text = self.call(reqwest::Method::GET, "/internal/dead-letters", Vec::new()).await?;
        serde_json::from_str(&text).map_err(|e| AdminError::Edge(format!("the list: {e}")))
    }

    /// Sends the chosen dead-lettered webhooks again.
    pub async fn replay(&self, webhook_ids: Vec<String>) -> Result<ReplayOutcome, AdminError> {
        let body = serde_json::to_vec(&ReplayRequest { webhook_ids })
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        let path = "/internal/dead-letters/replay";
        let text = self.call(reqwest::Method::POST, path, body).await?;
        serde_json::from_str(&text).map_err(|e| AdminError::Edge(format!("the outcome: {e}")))
    }
}

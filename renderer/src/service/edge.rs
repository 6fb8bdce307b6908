//! The renderer's calls to the edge, each signed with `X-TailPDF-Internal`: job events
//! (retried until the edge acknowledges them) and render specs too large for the queue.

use std::time::{Duration, Instant};

use tailpdf_shared::{
    messages::{EventAck, RenderJobMessage},
    signing::{sign_internal, INTERNAL_SIGNATURE_HEADER},
    trace::TraceParent,
    JobEvent, RenderSpec, Timestamp,
};
use url::Url;

use super::{
    error::ServiceError,
    retry::{backoff, jitter},
};

pub struct EdgeClient {
    client: reqwest::Client,
    base: Url,
    secret: String,
    retry_budget: Duration,
}

/// Deadline of one call to the edge.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub fn now_timestamp() -> Timestamp {
    Timestamp::from_unix(now()).unwrap_or_else(|_| unreachable!("the clock is within 1..9999"))
}

impl EdgeClient {
    pub fn new(base: Url, secret: String, retry_budget: Duration) -> Result<Self, ServiceError> {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| ServiceError::Client { what: "the edge", source })?;
        Ok(Self { client, base, secret, retry_budget })
    }

    /// A signed call on behalf of `job`: it carries a child of the job's trace, so that the
    /// edge logs it under the trace of the job's `POST /pdf`.
    fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        job: &RenderJobMessage,
    ) -> Result<reqwest::RequestBuilder, ServiceError> {
        let url = self.base.join(path.trim_start_matches('/')).map_err(ServiceError::EdgePath)?;
        let signed_path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let signature = sign_internal(&self.secret, now(), method.as_str(), &signed_path, &body);
        let mut request = self
            .client
            .request(method, url)
            .header(INTERNAL_SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(trace) = job.traceparent.as_deref().and_then(TraceParent::parse) {
            request = request.header("traceparent", trace.child().header());
        }
        Ok(request.body(body))
    }

    /// Reports `event`, retrying until the edge answers 2xx or the retry budget is spent.
    pub async fn report(
        &self,
        job: &RenderJobMessage,
        event: &JobEvent,
    ) -> Result<EventAck, ServiceError> {
        let job_id = &job.job_id;
        let path = format!("/internal/jobs/{job_id}/events");
        let body = serde_json::to_vec(event).map_err(ServiceError::Encode)?;
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let problem =
                match self.signed(reqwest::Method::POST, &path, body.clone(), job)?.send().await {
                    Ok(r) if r.status().is_success() => {
                        return r.json::<EventAck>().await.map_err(ServiceError::EdgeAnswer);
                    }
                    Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                        return Err(ServiceError::EventRefused {
                            event: event.status(),
                            status: r.status(),
                        });
                    }
                    Ok(r) => ServiceError::EdgeStatus(r.status()),
                    Err(e) => ServiceError::EdgeUnreachable(e),
                };
            let delay =
                backoff(attempt, Duration::from_millis(200), Duration::from_secs(5), jitter());
            if started.elapsed() + delay >= self.retry_budget {
                return Err(ServiceError::GaveUp { attempts: attempt, last: Box::new(problem) });
            }
            tracing::warn!(%job_id, status = %event.status(), %problem, "event will be sent again");
            tokio::time::sleep(delay).await;
        }
    }

    /// Fetches a spec that did not fit in the queue message.
    pub async fn spec(&self, job: &RenderJobMessage) -> Result<RenderSpec, ServiceError> {
        let path = format!("/internal/jobs/{}/spec", job.job_id);
        let response = self
            .signed(reqwest::Method::GET, &path, Vec::new(), job)?
            .send()
            .await
            .map_err(ServiceError::EdgeUnreachable)?;
        if !response.status().is_success() {
            return Err(ServiceError::EdgeStatus(response.status()));
        }
        response.json().await.map_err(ServiceError::EdgeAnswer)
    }
}

//! Fetching on a document's behalf, behind the SSRF guard: every URL (and every redirect hop)
//! must pass `tailpdf_shared::url_guard`, every name must resolve to allowed addresses only
//! (checked on the addresses actually connected to, so DNS rebinding does not get through),
//! and every fetch has a deadline and a size limit.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};
use tailpdf_shared::{
    url_guard::{check_ip, check_url},
    UrlPolicy,
};

const MAX_REDIRECTS: usize = 5;

/// Why a resource was not fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Refused by the guard: the URL, a redirect or an address is not allowed.
    #[error("blocked: {0}")]
    Blocked(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// The caller's budget for the bytes received ran out.
    #[error("over the render's budget")]
    OverBudget,
    #[error("{0}")]
    Failed(String),
}

/// The guard's refusal inside reqwest's error chain (from the resolver or the redirect policy).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GuardRefusal(String);

/// A fetched resource.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Resolves names with the system resolver and keeps only the addresses the policy allows.
struct GuardedResolver {
    policy: UrlPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.iter().copied().filter(|a| check_ip(a.ip(), policy).is_ok()).collect();
            if allowed.is_empty() {
                let reason = if addrs.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    format!("{host} resolves only to private or reserved addresses")
                };
                return Err(
                    Box::new(GuardRefusal(reason)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct GuardedFetcher {
    client: reqwest::Client,
    policy: UrlPolicy,
    timeout: Duration,
    max_bytes: u64,
}

/// The guarded client could not be built: the service must not start without its guard.
#[derive(Debug, thiserror::Error)]
#[error("the SSRF-guarded HTTP client could not be built: {0}")]
pub struct GuardBuildError(#[source] reqwest::Error);

impl GuardedFetcher {
    /// A client that connects only where `policy` allows, directly: proxies from the
    /// environment are ignored, since a proxy would resolve names itself and the guard would
    /// never see the address connected to.
    pub fn new(
        policy: UrlPolicy,
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<Self, GuardBuildError> {
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(GuardRefusal(format!("more than {MAX_REDIRECTS} redirects")))
            } else if let Err(e) = check_url("redirect", attempt.url().as_str(), policy) {
                attempt.error(GuardRefusal(e.message))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { policy }))
            .redirect(redirects)
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("tailpdf/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .build()
            .map_err(GuardBuildError)?;
        Ok(Self { client, policy, timeout, max_bytes })
    }

    /// GETs `url` if the guard allows it. The guard's refusal, a redirect to a forbidden place
    /// or a name that resolves to one all come back as [`FetchError::Blocked`].
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        self.get_counted(url, self.max_bytes, |_| true).await
    }

    /// [`get`](Self::get) with at most `max_bytes`, calling `take(n)` for every `n` bytes
    /// received: when it answers false the fetch stops with [`FetchError::OverBudget`].
    pub async fn get_counted(
        &self,
        url: &str,
        max_bytes: u64,
        mut take: impl FnMut(u64) -> bool,
    ) -> Result<Fetched, FetchError> {
        let max_bytes = max_bytes.min(self.max_bytes);
        check_url("resource", url, self.policy).map_err(|e| FetchError::Blocked(e.message))?;
        let work = async {
            let response = self.client.get(url).send().await.map_err(|e| classify(&e))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if response.content_length().is_some_and(|n| n > max_bytes) {
                return Err(FetchError::TooLarge(max_bytes));
            }
            let mut body = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| classify(&e))?;
                if (body.len() + chunk.len()) as u64 > max_bytes {
                    return Err(FetchError::TooLarge(max_bytes));
                }
                if !take(chunk.len() as u64) {
                    return Err(FetchError::OverBudget);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched { status, content_type, body: body.into() })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or(Err(FetchError::Timeout(self.timeout)))
    }
}

impl GuardedFetcher {
    /// PUTs `body` to `url` (a presigned upload URL) if the guard allows it, within `timeout`;
    /// returns the status code. Nothing is read of the answer beyond its status.
    pub async fn put(
        &self,
        url: &str,
        content_type: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<reqwest::StatusCode, FetchError> {
        check_url("upload_url", url, self.policy).map_err(|e| FetchError::Blocked(e.message))?;
        let request = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .timeout(timeout)
            .send();
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(response)) => Ok(response.status()),
            Ok(Err(e)) if e.is_timeout() => Err(FetchError::Timeout(timeout)),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(FetchError::Timeout(timeout)),
        }
    }
}

/// Finds the guard's refusal in reqwest's error chain; anything else is a plain failure.
fn classify(e: &reqwest::Error) -> FetchError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<GuardRefusal>() {
            return FetchError::Blocked(refusal.0.clone());
        }
        source = s.source();
    }
    // reqwest's own message names the URL, whose query may hold a signature: keep the causes.
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    FetchError::Failed(if causes.is_empty() {
        String::from("request failed")
    } else {
        causes.join(": ")
    })
}

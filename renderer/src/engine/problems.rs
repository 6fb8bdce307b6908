//! What a document asked for and did not get: each request refused or failed, by reason, kept
//! for the render's answer, its one log line and the `/metrics` counters.

use std::sync::Mutex;

use tailpdf_shared::url_guard::redact_url;

/// Why a request of a document was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// The URL guard refused it: a private, loopback or link-local address, a name that
    /// resolves to one, or a scheme it does not fetch.
    Blocked,
    /// A `file:` URL: Chromium never loads local files for a document.
    LocalFile,
    /// The document tried to navigate away.
    Navigation,
    /// Not a GET or HEAD.
    Method,
    /// Past the render's limits (requests, bytes).
    Limit,
    /// A resource larger than `--max-resource-bytes`.
    TooLarge,
    /// No answer within `--fetch-timeout`.
    Timeout,
    /// Answered with an error status (4xx, 5xx).
    Status,
    /// The connection failed.
    Failed,
}

impl Refusal {
    pub const ALL: [Self; 9] = [
        Self::Blocked,
        Self::LocalFile,
        Self::Navigation,
        Self::Method,
        Self::Limit,
        Self::TooLarge,
        Self::Timeout,
        Self::Status,
        Self::Failed,
    ];

    /// Its name in logs and in `/metrics`' `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::LocalFile => "local_file",
            Self::Navigation => "navigation",
            Self::Method => "method",
            Self::Limit => "limit",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::Status => "status",
            Self::Failed => "failed",
        }
    }
}

/// One request not loaded: its URL without the query, why, and what was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub url: String,
    pub reason: Refusal,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.url, self.detail)
    }
}

/// The problems of one render, from every target it used; a request tried again in a fresh
/// context after a shared tab is counted once.
#[derive(Debug, Default)]
pub(crate) struct Problems(Mutex<Vec<Problem>>);

impl Problems {
    pub(crate) fn note(&self, url: &str, reason: Refusal, detail: &str) {
        let problem = Problem { url: redact_url(url), reason, detail: detail.to_owned() };
        let mut all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !all.iter().any(|p| p.url == problem.url && p.reason == reason) {
            all.push(problem);
        }
    }

    pub(crate) fn all(&self) -> Vec<Problem> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// How many URLs one log line shows.
const SHOWN: usize = 3;

/// The render's problems in one line's fields: counts by reason (`blocked: 3, timeout: 1`) and
/// the first few URLs; `None` when there were none.
pub fn summary(problems: &[Problem]) -> Option<(String, String)> {
    if problems.is_empty() {
        return None;
    }
    let counts: Vec<String> = Refusal::ALL
        .iter()
        .filter_map(|r| {
            let n = problems.iter().filter(|p| p.reason == *r).count();
            (n > 0).then(|| format!("{}: {n}", r.label()))
        })
        .collect();
    let mut first: Vec<String> = problems.iter().take(SHOWN).map(ToString::to_string).collect();
    if problems.len() > SHOWN {
        first.push(format!("and {} more", problems.len() - SHOWN));
    }
    Some((counts.join(", "), first.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_s_problems_are_counted_by_reason_and_shown_without_queries() {
        let problems = Problems::default();
        for i in 0..5 {
            problems.note(
                &format!("http://10.0.0.{i}/x.png?token=secret"),
                Refusal::Blocked,
                "blocked: a private address",
            );
        }
        problems.note("http://10.0.0.1/x.png?token=secret", Refusal::Blocked, "again");
        problems.note("https://slow.example/a.css", Refusal::Timeout, "no answer within 10s");
        let all = problems.all();
        assert_eq!(all.len(), 6, "the same URL for the same reason counts once");
        let (counts, first) = summary(&all).unwrap();
        assert_eq!(counts, "blocked: 5, timeout: 1");
        assert_eq!(
            first,
            "http://10.0.0.0/x.png?<redacted> (blocked: a private address); \
             http://10.0.0.1/x.png?<redacted> (blocked: a private address); \
             http://10.0.0.2/x.png?<redacted> (blocked: a private address); and 3 more"
        );
        assert!(!first.contains("secret"));
        assert_eq!(summary(&[]), None);
    }
}

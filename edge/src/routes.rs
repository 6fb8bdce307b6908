//! Which endpoint a request is for: the route table as a plain function, so that 404 and 405
//! (with `Allow`) are decided in one place and tested natively.

use serde::Serialize;
use tailpdf_shared::{
    limits::{MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES},
    ApiError, ErrorCode,
};

/// An endpoint of the edge, with the job id from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /`: what this service is (client libraries use it as a liveness check).
    Index,
    /// `POST /pdf`.
    Pdf,
    /// `GET /jobs/{id}`.
    Job(&'a str),
    /// `POST /pdf/batch` (a tailpdf extension).
    PdfBatch,
    /// `GET /batches/{id}`.
    Batch(&'a str),
    /// `POST /internal/jobs/{id}/events` (signed).
    JobEvents(&'a str),
    /// `GET /internal/jobs/{id}/spec` (signed).
    JobSpec(&'a str),
    /// `GET /internal/dead-letters` (signed with the admin secret).
    DeadLetters,
    /// `POST /internal/dead-letters/replay` (signed with the admin secret).
    ReplayDeadLetters,
}

/// The route for `method` on `path`: 404 for a path that is not one, 405 with `Allow` for a
/// path that is one but not with this method.
pub fn route<'a>(method: &str, path: &'a str) -> Result<Route<'a>, ApiError> {
    let segments: Vec<&'a str> = path.trim_matches('/').split('/').collect();
    let (route, allow) = match segments.as_slice() {
        [""] => (Route::Index, "GET, HEAD"),
        ["pdf"] => (Route::Pdf, "POST"),
        ["jobs", id] if !id.is_empty() => (Route::Job(id), "GET, HEAD"),
        ["pdf", "batch"] => (Route::PdfBatch, "POST"),
        ["batches", id] if !id.is_empty() => (Route::Batch(id), "GET, HEAD"),
        ["internal", "jobs", id, "events"] => (Route::JobEvents(id), "POST"),
        ["internal", "jobs", id, "spec"] => (Route::JobSpec(id), "GET"),
        ["internal", "dead-letters"] => (Route::DeadLetters, "GET"),
        ["internal", "dead-letters", "replay"] => (Route::ReplayDeadLetters, "POST"),
        _ => {
            return Err(ApiError::not_found(format!(
                "No such endpoint: {path}. Use POST /pdf or GET /jobs/{{id}}."
            )))
        }
    };
    if allow.split(", ").any(|m| m == method) {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(method, path, allow))
    }
}

impl Route<'_> {
    /// The most bytes of body this endpoint reads: a batch's documents share one request.
    pub fn body_limit(&self) -> usize {
        match self {
            Route::PdfBatch => MAX_BATCH_BODY_BYTES,
            _ => MAX_BODY_BYTES,
        }
    }
}

/// 413 when a request declares (`Content-Length`) more body than `max`, before any of it is
/// read; the parsers check the length read too.
pub fn check_declared_length(declared: Option<usize>, max: usize) -> Result<(), ApiError> {
    if declared.is_some_and(|n| n > max) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is over {max} bytes."),
        ));
    }
    Ok(())
}

/// Headers on every answer, errors included: each is one account's own (a PDF, a job), so no
/// cache may keep it.
pub const EVERY_ANSWER: [(&str, &str); 1] = [("Cache-Control", "no-store")];

/// The body of `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceInfo {
    pub service: &'static str,
    pub version: &'static str,
    pub docs: &'static str,
    pub status: &'static str,
}

pub const SERVICE_INFO: ServiceInfo = ServiceInfo {
    service: "tailpdf",
    version: env!("CARGO_PKG_VERSION"),
    docs: concat!(env!("CARGO_PKG_REPOSITORY"), "#the-api-in-brief"),
    status: "ok",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_by_its_method() {
        assert_eq!(route("GET", "/"), Ok(Route::Index));
        assert_eq!(route("HEAD", "/"), Ok(Route::Index));
        assert_eq!(route("POST", "/pdf"), Ok(Route::Pdf));
        assert_eq!(route("POST", "/pdf/"), Ok(Route::Pdf));
        assert_eq!(route("GET", "/jobs/01J"), Ok(Route::Job("01J")));
        assert_eq!(route("POST", "/pdf/batch"), Ok(Route::PdfBatch));
        assert_eq!(route("GET", "/batches/01J"), Ok(Route::Batch("01J")));
        assert_eq!(route("HEAD", "/batches/01J"), Ok(Route::Batch("01J")));
        assert_eq!(route("POST", "/internal/jobs/01J/events"), Ok(Route::JobEvents("01J")));
        assert_eq!(route("GET", "/internal/jobs/01J/spec"), Ok(Route::JobSpec("01J")));
        assert_eq!(route("GET", "/internal/dead-letters"), Ok(Route::DeadLetters));
        assert_eq!(route("POST", "/internal/dead-letters/replay"), Ok(Route::ReplayDeadLetters));
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        for (method, path, allow) in [
            ("GET", "/pdf", "POST"),
            ("PUT", "/pdf", "POST"),
            ("DELETE", "/jobs/01J", "GET, HEAD"),
            ("POST", "/", "GET, HEAD"),
            ("GET", "/internal/jobs/01J/events", "POST"),
            ("GET", "/pdf/batch", "POST"),
            ("POST", "/batches/01J", "GET, HEAD"),
        ] {
            let e = route(method, path).unwrap_err();
            assert_eq!((e.status(), e.allow), (405, Some(allow)), "{method} {path}");
            assert!(e.message.contains(method) && e.message.contains(allow), "{}", e.message);
        }
    }

    #[test]
    fn anything_else_is_404() {
        for path in [
            "/pdfs",
            "/jobs",
            "/jobs/",
            "/jobs/a/b",
            "/internal/jobs/a",
            "/x/y",
            "/batches",
            "/batches/a/jobs",
            "/pdf/batches",
        ] {
            assert_eq!(route("GET", path).unwrap_err().status(), 404, "{path}");
        }
    }

    #[test]
    fn a_batch_may_send_more_than_a_single_job_and_a_declared_excess_is_413() {
        assert_eq!(Route::Pdf.body_limit(), MAX_BODY_BYTES);
        assert_eq!(Route::JobEvents("01J").body_limit(), MAX_BODY_BYTES);
        assert_eq!(Route::PdfBatch.body_limit(), MAX_BATCH_BODY_BYTES);
        let max = Route::Pdf.body_limit();
        assert!(check_declared_length(None, max).is_ok());
        assert!(check_declared_length(Some(max), max).is_ok());
        let e = check_declared_length(Some(max + 1), max).unwrap_err();
        assert_eq!((e.status(), e.code), (413, ErrorCode::PayloadTooLarge));
    }

    #[test]
    fn no_answer_may_be_cached() {
        assert!(EVERY_ANSWER.contains(&("Cache-Control", "no-store")));
    }

    #[test]
    fn the_index_names_the_service_and_its_docs() {
        let body = serde_json::to_value(SERVICE_INFO).unwrap();
        assert_eq!(body["service"], "tailpdf");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["docs"].as_str().unwrap().starts_with("https://"));
    }
}

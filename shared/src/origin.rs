//! Where the edge and the renderer reach each other (`RENDERER_URL`, `--edge-url`): an origin
//! only. Internal calls are signed over their path (`/jobs`, `/internal/jobs/{id}/events`) and
//! routed by it, so a base path would make every call fail (401 or 404) long after start-up.

use url::Url;

/// Parses `http(s)://host[:port]` (a trailing `/` is fine); anything else says what is wrong.
pub fn parse_origin(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} must be an http(s) URL such as https://renderer.example.com"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{raw:?} must be an origin only (scheme, host and port): internal calls are signed \
             over their path, so drop {:?}",
            &url[url::Position::BeforePath..]
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{raw:?} must not carry credentials"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_only() {
        for ok in ["https://r.example.com", "https://r.example.com/", "http://127.0.0.1:3000"] {
            assert!(parse_origin(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_origin("http://127.0.0.1:3000").unwrap().as_str(),
            "http://127.0.0.1:3000/"
        );
        for (bad, says) in [
            ("https://r.example.com/tailpdf", "\"/tailpdf\""),
            ("https://r.example.com/?x=1", "origin only"),
            ("ftp://r.example.com", "http(s)"),
            ("r.example.com", "not a URL"),
            ("https://u:p@r.example.com", "credentials"),
        ] {
            let e = parse_origin(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

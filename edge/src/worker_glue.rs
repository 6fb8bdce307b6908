//! `#[event]` entry points: translate between workers-rs and the plain-Rust edge.

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(_req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    let error = crate::not_built_yet();
    let mut response = Response::from_json(&error.body())?.with_status(error.status());
    if let Some(secs) = error.retry_after_secs {
        response.headers_mut().set("Retry-After", &secs.to_string())?;
    }
    Ok(response)
}

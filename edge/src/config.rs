//! The Worker's settings, from wrangler vars and secrets (read by the glue into a map first,
//! so that parsing them is plain Rust).

use std::time::Duration;

use tailpdf_shared::{limits::JOB_TTL_DONE_SECS, origin::parse_origin, Timestamp, UrlPolicy};

use crate::store::Limits;

#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `INTERNAL_SECRET`: signs every edge ↔ renderer call.
    pub internal_secret: String,
    /// `ADMIN_SECRET`: signs the operator's calls (dead letters); unset, they are refused.
    pub admin_secret: Option<String>,
    /// `DEAD_LETTER_TTL_SECS`: how long a dead-lettered webhook is kept for replay.
    pub dead_letter_ttl_secs: u64,
    /// `RENDERER_URL`: the renderers for sync renders and push mode, origins separated by
    /// commas (one at least); see [`crate::renderers`] for which gets a call. In Containers
    /// mode, the pool's origins instead ([`crate::containers::origins`]).
    pub renderers: Vec<String>,
    /// Containers mode, when `RENDERER_CONTAINERS` is above 0.
    pub containers: Option<ContainerSettings>,
    /// `ALLOW_LOOPBACK` = "true": local development only.
    pub url_policy: UrlPolicy,
    /// `JOB_TTL_DONE_SECS`: how long an ended job stays readable (KV keeps its keys at least
    /// 60 s, its minimum; reads past this TTL are 404 all the same).
    pub job_ttl_done_secs: u64,
    /// `SYNC_TIMEOUT_SECS`: how long a sync render may take before 503.
    pub sync_timeout: Duration,
    /// `PUSH_TIMEOUT_SECS`: how long one push-mode delivery (a job, or a batch's group) may
    /// take, the renderer's whole answer included; then the delivery counts as failed.
    pub push_timeout: Duration,
    /// `WEBHOOK_TIMEOUT_SECS`: deadline of one webhook delivery.
    pub webhook_timeout: Duration,
    /// `WEBHOOK_RETRY_DELAYS`: seconds before each retry, comma-separated; after the last,
    /// the message goes to the dead-letter queue.
    pub webhook_retry_delays: Vec<u32>,
    /// `RENDER_RETRY_DELAY_SECS`: push mode's wait before delivering a job again.
    pub render_retry_delay_secs: u32,
    /// `RENDER_MAX_ATTEMPTS`: push mode's deliveries of one job before it fails for want of a
    /// renderer (a renderer fails a job itself after its own `--max-attempts`).
    pub render_max_attempts: u32,
    /// `PUSH_CHECK_SECS`: push mode's wait between questions about a job a renderer took (is
    /// it still there?); a renderer that died with the job is noticed at the next one.
    pub push_check_secs: u32,
    /// `RENDER_MAX_WAIT_SECS`: how long a job may wait for room on a renderer (every renderer
    /// answered "busy") before it fails, saying so.
    pub render_max_wait_secs: u64,
    /// `RATE_LIMIT_REQUESTS_PER_MINUTE` and `RATE_LIMIT_JOBS_IN_FLIGHT`: the limits of an
    /// account whose record sets none (0: no limit).
    pub default_limits: Limits,
}

/// Containers mode: the renderers run as Cloudflare container instances beside the Worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSettings {
    /// `RENDERER_CONTAINERS`: the pool's instances (at most the config's `max_instances`).
    pub instances: u32,
    /// `EDGE_URL`: the Worker's public origin, which the instances report back to.
    pub edge_url: String,
    /// `CONTAINER_SLEEP_AFTER_SECS`: an instance asked nothing for this long is stopped (it
    /// costs nothing asleep, and starts again at the next call).
    pub sleep_after: Duration,
    /// `CONTAINER_TABS`: each instance's renderer's `TAILPDF_TABS`.
    pub tabs: u32,
    /// `CONTAINER_START_TIMEOUT_SECS`: how long a call waits for an instance to start and
    /// answer `/readyz` before the next instance is tried.
    pub start_timeout: Duration,
}

/// Svix-like growing delays: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h.
pub const DEFAULT_WEBHOOK_RETRY_DELAYS: [u32; 7] = [5, 30, 120, 600, 1800, 3600, 7200];

/// The origin variable `name` holds, without its trailing slash.
fn origin_of(name: &str, v: &str) -> Result<String, String> {
    let origin = parse_origin(v).map_err(|e| format!("{name}: {v:?}: {e}"))?;
    Ok(origin.as_str().trim_end_matches('/').to_owned())
}

/// `RENDERER_URL`'s origins, separated by commas (spaces around them allowed), each once.
fn parse_renderers(v: &str) -> Result<Vec<String>, String> {
    let mut renderers: Vec<String> = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let origin = origin_of("RENDERER_URL", part)?;
        if !renderers.contains(&origin) {
            renderers.push(origin);
        }
    }
    if renderers.is_empty() {
        return Err(String::from("RENDERER_URL names no renderer"));
    }
    Ok(renderers)
}

impl EdgeConfig {
    /// Whether what ended at `ended` (a job, a batch) is still readable at `now`; reads past
    /// `job_ttl_done_secs` are 404 even while KV still holds the keys.
    pub fn still_kept(&self, ended: Option<Timestamp>, now: Timestamp) -> bool {
        let ttl = i64::try_from(self.job_ttl_done_secs).unwrap_or(i64::MAX);
        ended.is_none_or(|ended| ended.seconds_until(now) <= ttl)
    }

    /// From the Worker's variables; `get` returns a variable or secret by name.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let internal_secret = get("INTERNAL_SECRET")
            .filter(|s| !s.is_empty())
            .ok_or("INTERNAL_SECRET is not set: `wrangler secret put INTERNAL_SECRET`")?;
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match get(name) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number, got {v:?}")),
                None => Ok(default),
            }
        };
        let webhook_retry_delays = match get("WEBHOOK_RETRY_DELAYS") {
            Some(v) => v
                .split(',')
                .map(|d| d.trim().parse::<u32>().map(|d| d.min(43_200)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    format!("WEBHOOK_RETRY_DELAYS must be seconds separated by commas, got {v:?}")
                })?,
            None => DEFAULT_WEBHOOK_RETRY_DELAYS.to_vec(),
        };
        let instances = u32::try_from(number("RENDERER_CONTAINERS", 0)?.min(1000)).unwrap_or(0);
        let containers = match instances {
            0 => None,
            instances => Some(ContainerSettings {
                instances,
                edge_url: match get("EDGE_URL") {
                    Some(v) => origin_of("EDGE_URL", v.trim())?,
                    None => {
                        return Err(String::from(
                            "RENDERER_CONTAINERS needs EDGE_URL, the Worker's public origin",
                        ))
                    }
                },
                sleep_after: Duration::from_secs(
                    number("CONTAINER_SLEEP_AFTER_SECS", 600)?.max(60),
                ),
                tabs: u32::try_from(number("CONTAINER_TABS", 2)?.clamp(1, 64)).unwrap_or(2),
                start_timeout: Duration::from_secs(
                    number("CONTAINER_START_TIMEOUT_SECS", 60)?.max(1),
                ),
            }),
        };
        Ok(Self {
            internal_secret,
            admin_secret: get("ADMIN_SECRET").filter(|s| !s.is_empty()),
            dead_letter_ttl_secs: number("DEAD_LETTER_TTL_SECS", 7 * 24 * 3600)?.max(60),
            renderers: match (&containers, get("RENDERER_URL")) {
                (Some(pool), _) => crate::containers::origins(pool.instances),
                (None, Some(v)) => parse_renderers(&v)?,
                (None, None) => vec![String::from("http://127.0.0.1:3000")],
            },
            containers,
            url_policy: UrlPolicy {
                allow_loopback: get("ALLOW_LOOPBACK").as_deref() == Some("true"),
            },
            job_ttl_done_secs: number("JOB_TTL_DONE_SECS", JOB_TTL_DONE_SECS)?.max(1),
            sync_timeout: Duration::from_secs(number("SYNC_TIMEOUT_SECS", 60)?),
            push_timeout: Duration::from_secs(number("PUSH_TIMEOUT_SECS", 600)?.max(1)),
            webhook_timeout: Duration::from_secs(number("WEBHOOK_TIMEOUT_SECS", 10)?),
            webhook_retry_delays,
            render_retry_delay_secs: u32::try_from(number("RENDER_RETRY_DELAY_SECS", 10)?)
                .unwrap_or(10),
            render_max_attempts: u32::try_from(number("RENDER_MAX_ATTEMPTS", 60)?)
                .unwrap_or(60)
                .max(1),
            // Queues delays a message by 12 h at most.
            push_check_secs: u32::try_from(number("PUSH_CHECK_SECS", 10)?.clamp(1, 43_200))
                .unwrap_or(10),
            render_max_wait_secs: number("RENDER_MAX_WAIT_SECS", 3600)?,
            default_limits: Limits {
                requests_per_minute: Some(
                    u32::try_from(number("RATE_LIMIT_REQUESTS_PER_MINUTE", 0)?).unwrap_or(0),
                ),
                jobs_in_flight: Some(
                    u32::try_from(number("RATE_LIMIT_JOBS_IN_FLIGHT", 0)?).unwrap_or(0),
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = EdgeConfig::from_vars(vars(&[("INTERNAL_SECRET", "s")])).unwrap();
        assert_eq!(c.job_ttl_done_secs, 3600);
        assert_eq!(c.webhook_retry_delays, DEFAULT_WEBHOOK_RETRY_DELAYS);
        assert_eq!(c.render_max_attempts, 60);
        assert_eq!(c.push_timeout, Duration::from_secs(600));
        assert_eq!((c.push_check_secs, c.render_max_wait_secs), (10, 3600));
        assert_eq!((c.admin_secret, c.dead_letter_ttl_secs), (None, 604_800));
        assert!(!c.url_policy.allow_loopback);
        assert_eq!(
            c.default_limits,
            Limits { requests_per_minute: Some(0), jobs_in_flight: Some(0) }
        );
        let c = EdgeConfig::from_vars(vars(&[
            ("INTERNAL_SECRET", "s"),
            ("JOB_TTL_DONE_SECS", "5"),
            ("WEBHOOK_RETRY_DELAYS", "1, 2,3"),
            ("ALLOW_LOOPBACK", "true"),
            ("RENDER_MAX_ATTEMPTS", "0"),
            ("PUSH_TIMEOUT_SECS", "0"),
            ("PUSH_CHECK_SECS", "0"),
            ("RATE_LIMIT_REQUESTS_PER_MINUTE", "600"),
            ("RATE_LIMIT_JOBS_IN_FLIGHT", "40"),
        ]))
        .unwrap();
        assert_eq!(c.render_max_attempts, 1, "at least one delivery");
        assert_eq!(c.push_timeout, Duration::from_secs(1), "never no time at all");
        assert_eq!(c.push_check_secs, 1, "Queues delays a message a second at least");
        assert_eq!(c.job_ttl_done_secs, 5, "shorter than KV's minimum: enforced on read");
        assert_eq!(c.webhook_retry_delays, [1, 2, 3]);
        assert!(c.url_policy.allow_loopback);
        let limits = Limits { requests_per_minute: Some(600), jobs_in_flight: Some(40) };
        assert_eq!(c.default_limits, limits);
    }

    #[test]
    fn containers_mode_replaces_renderer_url_with_the_pool() {
        let c = EdgeConfig::from_vars(vars(&[
            ("INTERNAL_SECRET", "s"),
            ("RENDERER_URL", "https://r.example.com"),
            ("RENDERER_CONTAINERS", "3"),
            ("EDGE_URL", "https://tailpdf.example.workers.dev/"),
        ]))
        .unwrap();
        assert_eq!(c.renderers, crate::containers::origins(3));
        let pool = c.containers.unwrap();
        assert_eq!(pool.instances, 3);
        assert_eq!(pool.edge_url, "https://tailpdf.example.workers.dev");
        assert_eq!(pool.sleep_after, Duration::from_secs(600));
        assert_eq!(pool.start_timeout, Duration::from_secs(60));
        assert_eq!(pool.tabs, 2);
        let e =
            EdgeConfig::from_vars(vars(&[("INTERNAL_SECRET", "s"), ("RENDERER_CONTAINERS", "2")]))
                .unwrap_err();
        assert!(e.contains("EDGE_URL"), "{e}");
        let e = EdgeConfig::from_vars(vars(&[
            ("INTERNAL_SECRET", "s"),
            ("RENDERER_CONTAINERS", "2"),
            ("EDGE_URL", "https://edge.example.com/path"),
        ]))
        .unwrap_err();
        assert!(e.contains("EDGE_URL"), "{e}");
        let off =
            EdgeConfig::from_vars(vars(&[("INTERNAL_SECRET", "s"), ("RENDERER_CONTAINERS", "0")]))
                .unwrap();
        assert!(off.containers.is_none());
        assert_eq!(off.renderers, ["http://127.0.0.1:3000"]);
    }

    #[test]
    fn a_missing_secret_or_bad_number_is_an_error() {
        assert!(EdgeConfig::from_vars(vars(&[])).unwrap_err().contains("INTERNAL_SECRET"));
        let e =
            EdgeConfig::from_vars(vars(&[("INTERNAL_SECRET", "s"), ("SYNC_TIMEOUT_SECS", "soon")]))
                .unwrap_err();
        assert!(e.contains("SYNC_TIMEOUT_SECS"));
        let e = EdgeConfig::from_vars(vars(&[
            ("INTERNAL_SECRET", "s"),
            ("RENDERER_URL", "https://r.example.com/tailpdf"),
        ]))
        .unwrap_err();
        assert!(e.contains("RENDERER_URL") && e.contains("origin only"), "{e}");
        let c = EdgeConfig::from_vars(vars(&[
            ("INTERNAL_SECRET", "s"),
            ("RENDERER_URL", "https://r.example.com/"),
        ]))
        .unwrap();
        assert_eq!(c.renderers, ["https://r.example.com"]);
    }

    #[test]
    fn renderer_url_lists_renderers_separated_by_commas() {
        let with =
            |v: &str| EdgeConfig::from_vars(vars(&[("INTERNAL_SECRET", "s"), ("RENDERER_URL", v)]));
        let c = with(" https://a.example.com, https://b.example.com:8443/ ,https://a.example.com")
            .unwrap();
        assert_eq!(c.renderers, ["https://a.example.com", "https://b.example.com:8443"]);
        let e = with("https://a.example.com,https://b.example.com/x").unwrap_err();
        assert!(e.contains("b.example.com/x") && e.contains("origin only"), "{e}");
        assert!(with(" , ").unwrap_err().contains("no renderer"));
    }
}

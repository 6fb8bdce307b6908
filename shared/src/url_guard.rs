//! The SSRF guard for every URL we call on a user's behalf (`upload_url`, `webhook_url`, and the
//! page's own requests in the renderer).
//!
//! [`check_url`] is applied when a request is submitted: http or https (TailPDF refuses only
//! internal and private URLs; https is advised, not required), no credentials, and no host that
//! is, or names, a private, loopback, link-local, metadata or otherwise non-public address.
//! Names are resolved only when they are fetched, so the fetching side checks each resolved
//! address again with [`check_ip`] (and again after every redirect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::{limits::MAX_URL_BYTES, ApiError, ErrorCode};

/// What the guard lets through beyond the public internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Local development only: allows loopback hosts (127.0.0.0/8, ::1, localhost), over http too.
    pub allow_loopback: bool,
}

impl UrlPolicy {
    pub const PRODUCTION: Self = Self { allow_loopback: false };
    pub const DEVELOPMENT: Self = Self { allow_loopback: true };
}

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, unique-local, CGNAT, and single-label or internal-only names.
    Private,
    LinkLocal,
    /// Cloud metadata services (169.254.169.254, fd00:ec2::254, metadata.google.internal, ...).
    Metadata,
    /// Unspecified, broadcast, multicast, documentation, benchmarking and reserved ranges.
    Reserved,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private network address",
            Self::LinkLocal => "a link-local address",
            Self::Metadata => "a cloud metadata address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// Classifies an IP address. IPv4 embedded in IPv6 (mapped, NAT64, 6to4) is judged as IPv4.
pub fn classify_ip(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => AddressClass::Metadata,
        (127, _, _) => AddressClass::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::Private, // CGNAT, RFC 6598
        (169, 254, _) => AddressClass::LinkLocal,
        (0, _, _) => AddressClass::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Reserved,
        (198, 18..=19, _) => AddressClass::Reserved, // benchmarking, RFC 2544
        (224..=255, _, _) => AddressClass::Reserved, // multicast, reserved, broadcast
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let seg = ip.segments();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified() {
        AddressClass::Reserved
    } else if seg == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        AddressClass::Metadata // AWS IMDS over IPv6
    } else if seg[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private // unique local fc00::/7
    } else if seg[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if seg[0] & 0xff00 == 0xff00 // multicast
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF assignments 2001::/23, Teredo among them
        || seg[0] & 0xfff0 == 0x3ff0 // documentation 3fff::/20
        || seg[0] == 0x5f00 // SRv6 SIDs
        || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 1) // local-use NAT64 64:ff9b:1::/48
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // discard 100::/64
        || seg[0] & 0xffc0 == 0xfec0
    // deprecated site-local
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d), IPv4-translated
/// (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
/// address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let tail = Ipv4Addr::new((seg[6] >> 8) as u8, seg[6] as u8, (seg[7] >> 8) as u8, seg[7] as u8);
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        [0x2002, hi, lo, ..] => {
            Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8))
        }
        _ => None,
    }
}

/// Classifies a host name without resolving it.
fn classify_domain(name: &str) -> AddressClass {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    const METADATA: [&str; 4] =
        ["metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"];
    const PRIVATE_SUFFIXES: [&str; 6] =
        [".internal", ".local", ".localdomain", ".lan", ".home.arpa", ".intranet"];
    if name == "localhost" || name.ends_with(".localhost") {
        AddressClass::Loopback
    } else if METADATA.contains(&name.as_str()) {
        AddressClass::Metadata
    } else if !name.contains('.') || PRIVATE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        // A single label resolves through search domains, i.e. inside someone's network.
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Whether a resolved address may be connected to under `policy`.
pub fn check_ip(ip: IpAddr, policy: UrlPolicy) -> Result<(), AddressClass> {
    allowed(classify_ip(ip), policy)
}

fn allowed(class: AddressClass, policy: UrlPolicy) -> Result<(), AddressClass> {
    match class {
        AddressClass::Public => Ok(()),
        AddressClass::Loopback if policy.allow_loopback => Ok(()),
        other => Err(other),
    }
}

/// Checks a URL given in field `field` of a request; returns it parsed.
pub fn check_url(field: &str, raw: &str, policy: UrlPolicy) -> Result<Url, ApiError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(ApiError::validation(format!(
            "`{field}` is {} bytes long; at most {MAX_URL_BYTES} are accepted.",
            raw.len()
        )));
    }
    let url = Url::parse(raw.trim()).map_err(|e| {
        ApiError::validation(format!(
            "`{field}` is not a valid URL ({e}): send an absolute https:// URL."
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::validation(format!(
            "`{field}` must not contain a user name or password: put credentials in the URL's \
             query (as a presigned URL does) instead."
        )));
    }
    let class = match url.host() {
        Some(Host::Domain(d)) => classify_domain(d),
        Some(Host::Ipv4(ip)) => classify_ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => classify_ip(IpAddr::V6(ip)),
        None => {
            return Err(ApiError::validation(format!(
                "`{field}` has no host: send an absolute https:// URL."
            )))
        }
    };
    allowed(class, policy).map_err(|class| {
        ApiError::new(
            ErrorCode::UrlNotAllowed,
            format!(
                "Internal/private URLs not allowed: `{field}` points to {} ({}). Use a public \
                 https URL.",
                url.host_str().unwrap_or_default(),
                class.describe()
            ),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(ApiError::validation(format!(
            "`{field}` must be an https:// (or http://) URL (got `{}:`).",
            url.scheme()
        )));
    }
    Ok(url)
}

/// A URL for logs: scheme, host and path, never the query (presigned signatures live there)
/// nor credentials.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => {
            let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
            if let Some(port) = url.port() {
                out.push_str(&format!(":{port}"));
            }
            out.push_str(url.path());
            if url.query().is_some() {
                out.push_str("?<redacted>");
            }
            out
        }
        Err(_) => String::from("<invalid url>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod(url: &str) -> Result<Url, ApiError> {
        check_url("upload_url", url, UrlPolicy::PRODUCTION)
    }

    #[test]
    fn public_https_passes() {
        let url = "https://my-bucket.s3.amazonaws.com/pdfs/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256";
        assert_eq!(prod(url).unwrap().host_str(), Some("my-bucket.s3.amazonaws.com"));
        assert!(prod("https://8.8.8.8/x").is_ok());
        assert!(prod("https://[2606:4700::1111]/x").is_ok());
    }

    #[test]
    fn http_to_public_hosts_passes_as_at_tailpdf() {
        assert_eq!(prod("http://example.com/x").unwrap().scheme(), "http");
        assert!(prod("http://8.8.8.8/x").is_ok());
        for url in
            ["http://127.0.0.1/", "http://10.0.0.1/", "http://169.254.169.254/", "http://redis/"]
        {
            assert_eq!(prod(url).unwrap_err().code, ErrorCode::UrlNotAllowed, "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/"] {
            let err = prod(url).unwrap_err();
            assert_eq!(err.code, ErrorCode::ValidationError, "{url}");
            assert!(err.message.contains("https://"), "{}", err.message);
        }
    }

    #[test]
    fn not_a_url_names_the_field() {
        let err = prod("not a url").unwrap_err();
        assert!(err.message.starts_with("`upload_url` is not a valid URL"), "{}", err.message);
    }

    #[test]
    fn credentials_are_refused() {
        assert_eq!(prod("https://u:p@example.com/").unwrap_err().code, ErrorCode::ValidationError);
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1.2.3/",
            "https://2130706433/", // 127.0.0.1 written as a number
            "https://0x7f.1/",
            "https://localhost/",
            "https://api.localhost/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://169.254.1.1/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://redis/",
            "https://printer.local/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:c0a8:0101::1]/",
            "https://[fd00:ec2::254]/",
            "https://[fc00::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
        ] {
            let err = prod(url).unwrap_err();
            assert_eq!(err.code, ErrorCode::UrlNotAllowed, "{url}");
            assert!(err.message.starts_with("Internal/private URLs not allowed"), "{url}");
        }
    }

    #[test]
    fn translated_local_nat64_and_reserved_v6_ranges_are_refused() {
        for (ip, class) in [
            // IPv4-translated (::ffff:0:a.b.c.d, RFC 2765), judged by the IPv4 inside.
            ("::ffff:0:7f00:1", AddressClass::Loopback),
            ("::ffff:0:a00:1", AddressClass::Private),
            ("::ffff:0:a9fe:a9fe", AddressClass::Metadata),
            // Local-use NAT64 (64:ff9b:1::/48, RFC 8215): any IPv4 may hide anywhere in it.
            ("64:ff9b:1::a00:1", AddressClass::Reserved),
            ("64:ff9b:1:ffff::7f00:1", AddressClass::Reserved),
            // IETF protocol assignments (2001::/23), documentation (3fff::/20), SRv6 (5f00::/16).
            ("2001:2::1", AddressClass::Reserved),
            ("3fff::1", AddressClass::Reserved),
            ("5f00::1", AddressClass::Reserved),
        ] {
            let addr: IpAddr = ip.parse().unwrap();
            assert_eq!(check_ip(addr, UrlPolicy::PRODUCTION), Err(class), "{ip}");
            let err = prod(&format!("https://[{ip}]/")).unwrap_err();
            assert_eq!(err.code, ErrorCode::UrlNotAllowed, "{ip}");
        }
        // Public IPv4 behind them stays public; the global NAT64 prefix is unchanged.
        assert!(check_ip("::ffff:0:5db8:d822".parse().unwrap(), UrlPolicy::PRODUCTION).is_ok());
        assert!(check_ip("64:ff9b::5db8:d822".parse().unwrap(), UrlPolicy::PRODUCTION).is_ok());
    }

    #[test]
    fn development_policy_allows_loopback_but_nothing_else_private() {
        let dev = UrlPolicy::DEVELOPMENT;
        assert!(check_url("upload_url", "http://127.0.0.1:9000/pdfs/a.pdf", dev).is_ok());
        assert!(check_url("upload_url", "http://localhost:9000/a", dev).is_ok());
        assert!(check_url("upload_url", "https://[::1]:8443/a", dev).is_ok());
        assert_eq!(
            check_url("upload_url", "https://10.0.0.1/", dev).unwrap_err().code,
            ErrorCode::UrlNotAllowed
        );
        assert!(check_url("upload_url", "http://example.com/", dev).is_ok());
    }

    #[test]
    fn resolved_addresses_are_checked_too() {
        assert!(check_ip("93.184.216.34".parse().unwrap(), UrlPolicy::PRODUCTION).is_ok());
        assert_eq!(
            check_ip("10.1.2.3".parse().unwrap(), UrlPolicy::PRODUCTION),
            Err(AddressClass::Private)
        );
        assert_eq!(
            check_ip("::ffff:169.254.169.254".parse().unwrap(), UrlPolicy::DEVELOPMENT),
            Err(AddressClass::Metadata)
        );
        assert!(check_ip("127.0.0.1".parse().unwrap(), UrlPolicy::DEVELOPMENT).is_ok());
    }

    #[test]
    fn overlong_urls_are_refused() {
        let url = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(prod(&url).unwrap_err().message.contains("bytes long"));
    }

    #[test]
    fn redaction_drops_query_and_credentials() {
        let r = redact_url("https://u:p@b.s3.amazonaws.com:8443/k.pdf?X-Amz-Signature=abc");
        assert_eq!(r, "https://b.s3.amazonaws.com:8443/k.pdf?<redacted>");
        assert!(!r.contains("abc"));
        assert_eq!(redact_url("::"), "<invalid url>");
    }
}

//! The address guard and the guarded `reqwest` client.

use crate::config::Config;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Whether an address is on the public internet. Loopback, private, link-local, CGNAT,
/// multicast, documentation, benchmarking, reserved and unspecified ranges are not;
/// IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0                                  // "this" network
        || a == 10                            // private
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || a == 127                           // loopback
        || (a == 169 && b == 254)             // link-local
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)     // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)     // TEST-NET-1
        || (a == 192 && b == 88 && c == 99)   // 6to4 relay anycast
        || (a == 192 && b == 168)             // private
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100)  // TEST-NET-2
        || (a == 203 && b == 0 && c == 113)   // TEST-NET-3
        || a >= 224) // multicast, reserved, broadcast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return is_public_v4(embedded_v4(s[6], s[7])); // NAT64 64:ff9b::/96
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded_v4(s[1], s[2])); // 6to4
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || s[0..6] == [0, 0, 0, 0, 0, 0]      // IPv4-compatible (deprecated)
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard 100::/64
        || (s[0] == 0x2001 && s[1] < 0x0200)  // IETF protocol assignments 2001::/23
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] & 0xfff0) == 0x3ff0          // documentation 3fff::/20
        || (s[0] & 0xfe00) == 0xfc00          // unique local
        || (s[0] & 0xffc0) == 0xfe80          // link-local
        || (s[0] & 0xffc0) == 0xfec0          // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00) // multicast
}

/// Why an outbound request was refused before it left: the whole reason, for the log
/// and the attempt record.
#[derive(Debug, Clone)]
pub struct Refused(String);

impl Refused {
    fn not_public(target: impl fmt::Display) -> Refused {
        Refused(format!(
            "refused: {target} is not a public address (allow_private_targets is false)"
        ))
    }

    fn unresolved(host: &str, cause: impl fmt::Display) -> Refused {
        Refused(format!(
            "refused: {host} could not be resolved to check it before sending it to \
             outbound_proxy: {cause}"
        ))
    }

    fn scheme(url: &reqwest::Url) -> Refused {
        Refused(format!(
            "refused: {url} is not an http or https URL with a host"
        ))
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// Resolves names and drops every non-public address: the connection can only be made to
/// what this returns, so the check holds for the address actually connected to.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = found.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused::not_public(host)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// What a guarded client may do.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// Let requests reach non-public addresses (tests, private deployments).
    pub allow_private: bool,
    /// Total time of one request.
    pub timeout: Duration,
    /// The HTTP proxy every request goes through (`outbound_proxy`); `None`: direct
    /// connections. Proxy variables of the environment are never used.
    pub proxy: Option<String>,
}

impl OutboundPolicy {
    /// The policy the configuration sets, with this use's timeout.
    pub fn from_config(config: &Config, timeout: Duration) -> OutboundPolicy {
        OutboundPolicy {
            allow_private: config.allow_private_targets,
            timeout,
            proxy: config.outbound_proxy.clone(),
        }
    }
}

/// Refuses a URL whose host is a non-public IP literal (names are checked when resolved).
fn check_literal(url: &reqwest::Url) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(Refused::not_public(ip))
    }
}

/// The one HTTP client for requests to other servers. It follows no redirects (a caller
/// that wants them uses [`GuardedClient::get_following`], which checks every hop) and
/// ignores the environment's proxy variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
/// lower-case too): a proxy is used only when `outbound_proxy` names one.
///
/// Unless private targets are allowed, every target is checked before it is sent:
/// - directly connected, the resolver drops every non-public address, so the check holds
///   for the address actually connected to, whatever DNS answers;
/// - through a proxy, the client connects to the proxy and the proxy resolves the target:
///   [`GuardedClient::check`] resolves the target's name first and refuses it unless every
///   address it resolves to is public. The proxy's own DNS answer may differ (DNS
///   rebinding, split-horizon DNS): a proxy should enforce an egress policy of its own.
#[derive(Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    allow_private: bool,
    proxied: bool,
    /// Bounds the name resolution of [`GuardedClient::check`] like the request itself.
    timeout: Duration,
}

impl GuardedClient {
    /// A client that enforces `policy`. The proxy URL was validated with the configuration.
    pub fn new(policy: &OutboundPolicy) -> GuardedClient {
        let mut builder = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("jobline/", env!("CARGO_PKG_VERSION")));
        if let Some(proxy) = &policy.proxy {
            builder = builder.proxy(reqwest::Proxy::all(proxy).expect("a validated proxy URL"));
        } else if !policy.allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        GuardedClient {
            client: builder.build().expect("a rustls client builds"),
            allow_private: policy.allow_private,
            proxied: policy.proxy.is_some(),
            timeout: policy.timeout,
        }
    }

    /// The `reqwest` client, to build a request whose URL [`GuardedClient::check`] passed.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    /// Refuses `url` unless it is http(s) with a host and (unless private targets are
    /// allowed) a public one: an IP literal is judged here; a name is judged by the
    /// resolver at connect time, or here by resolving it when a proxy will connect instead.
    pub async fn check(&self, url: &reqwest::Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Refused::scheme(url));
        }
        if self.allow_private {
            return Ok(());
        }
        check_literal(url)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if !self.proxied {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let found: Vec<SocketAddr> =
            tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| Refused::unresolved(host, "timed out"))?
                .map_err(|e| Refused::unresolved(host, e))?
                .collect();
        if found.is_empty() {
            return Err(Refused::unresolved(host, "no address"));
        }
        match found.iter().find(|a| !is_public(a.ip())) {
            Some(private) => Err(Refused::not_public(format!("{host} ({})", private.ip()))),
            None => Ok(()),
        }
    }

    /// GETs `url`, following at most `max_redirects` redirects; the first URL and every
    /// hop are [checked](GuardedClient::check) before they are requested.
    pub async fn get_following(
        &self,
        url: reqwest::Url,
        max_redirects: usize,
    ) -> Result<reqwest::Response, FetchError> {
        let mut url = url;
        let mut hops = 0;
        loop {
            self.check(&url).await.map_err(FetchError::Refused)?;
            let res = self
                .client
                .get(url.clone())
                .send()
                .await
                .map_err(FetchError::Http)?;
            let redirected = matches!(res.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let location = res
                .headers()
                .get(reqwest::header::LOCATION)
                .filter(|_| redirected);
            let Some(location) = location else {
                return Ok(res);
            };
            if hops == max_redirects {
                return Err(FetchError::TooManyRedirects(max_redirects));
            }
            hops += 1;
            url = location
                .to_str()
                .ok()
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| FetchError::BadRedirect(format!("{location:?}")))?;
        }
    }
}

/// Why [`GuardedClient::get_following`] got no answer.
#[derive(Debug)]
pub enum FetchError {
    /// The guard refused the URL or a redirect hop.
    Refused(Refused),
    /// More redirects than allowed.
    TooManyRedirects(usize),
    /// A `Location` that is not a URL.
    BadRedirect(String),
    /// The request failed (connection, timeout, protocol).
    Http(reqwest::Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Refused(r) => r.fmt(f),
            FetchError::TooManyRedirects(max) => write!(f, "more than {max} redirects"),
            FetchError::BadRedirect(l) => write!(f, "a redirect to {l}, which is not a URL"),
            FetchError::Http(e) => f.write_str(&describe_error(e)),
        }
    }
}

/// The whole chain of an error in one line (reqwest hides the cause behind "error sending
/// request"): what a log line or an attempt record should say.
pub fn describe_error(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn non_public_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "::127.0.0.1",
            "fec0::1",
            "3fff::1",
        ] {
            assert!(!public(ip), "{ip} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(ip), "{ip} must pass");
        }
    }

    fn client(allow_private: bool, proxy: Option<&str>) -> GuardedClient {
        GuardedClient::new(&OutboundPolicy {
            allow_private,
            timeout: Duration::from_secs(5),
            proxy: proxy.map(str::to_string),
        })
    }

    #[actix_rt::test]
    async fn ip_literals_and_schemes_are_checked_in_urls() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let (guarded, open) = (client(false, None), client(true, None));
        assert!(guarded
            .check(&url("http://127.0.0.1:8080/x"))
            .await
            .is_err());
        assert!(guarded
            .check(&url("http://[::ffff:192.168.0.1]/"))
            .await
            .is_err());
        assert!(open.check(&url("http://127.0.0.1/")).await.is_ok());
        assert!(guarded.check(&url("https://8.8.8.8/")).await.is_ok());
        assert!(guarded.check(&url("https://example.com/")).await.is_ok());
        assert!(open.check(&url("ftp://example.com/")).await.is_err());
    }

    #[actix_rt::test]
    async fn names_resolving_to_loopback_are_refused_at_connect() {
        let err = client(false, None)
            .http()
            .get("http://localhost:9/")
            .send()
            .await
            .unwrap_err();
        let text = describe_error(&err);
        assert!(text.contains("not a public address"), "{text}");
    }

    #[actix_rt::test]
    async fn through_a_proxy_names_are_resolved_and_checked_before_sending() {
        let proxied = client(false, Some("http://127.0.0.1:9"));
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let refused = proxied.check(&url("http://localhost:8080/")).await;
        let text = refused.unwrap_err().to_string();
        assert!(
            text.contains("localhost") && text.contains("not a public"),
            "{text}"
        );
        assert!(proxied.check(&url("http://[::1]/")).await.is_err());
        assert!(proxied.check(&url("http://8.8.8.8/")).await.is_ok());
        let open = client(true, Some("http://127.0.0.1:9"));
        assert!(open.check(&url("http://localhost:8080/")).await.is_ok());
    }
}

//! The address guard and the guarded `reqwest` client.

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

/// Why an outbound request was refused before it left.
#[derive(Debug, Clone)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused: {} is not a public address (allow_private_targets is false)",
            self.0
        )
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
                return Err(Box::new(Refused(host)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// What a guarded client may do.
#[derive(Debug, Clone, Copy)]
pub struct OutboundPolicy {
    /// Let requests reach non-public addresses (tests, private deployments).
    pub allow_private: bool,
    /// Total time of one request.
    pub timeout: Duration,
    /// Redirects to follow (0: none; a 3xx is then the answer).
    pub max_redirects: usize,
}

/// Refuses a URL whose host is a non-public IP literal (names are checked when resolved).
pub fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), Refused> {
    if allow_private {
        return Ok(());
    }
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    if is_public(ip) {
        Ok(())
    } else {
        Err(Refused(ip.to_string()))
    }
}

/// A client that enforces `policy` on every request and every redirect hop.
pub fn guarded_client(policy: OutboundPolicy) -> reqwest::Client {
    let allow = policy.allow_private;
    let max = policy.max_redirects;
    let redirects = if max == 0 {
        reqwest::redirect::Policy::none()
    } else {
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max {
                return attempt.error(format!("more than {max} redirects"));
            }
            if let Err(refused) = check_url(attempt.url(), allow) {
                return attempt.error(refused);
            }
            attempt.follow()
        })
    };
    let mut builder = reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .redirect(redirects)
        .user_agent(concat!("jobline/", env!("CARGO_PKG_VERSION")));
    if !allow {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    builder.build().expect("a rustls client builds")
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

    #[test]
    fn ip_literals_are_checked_in_urls() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(check_url(&url("http://127.0.0.1:8080/x"), false).is_err());
        assert!(check_url(&url("http://[::ffff:192.168.0.1]/"), false).is_err());
        assert!(check_url(&url("http://127.0.0.1/"), true).is_ok());
        assert!(check_url(&url("https://8.8.8.8/"), false).is_ok());
        assert!(check_url(&url("https://example.com/"), false).is_ok());
    }

    #[actix_rt::test]
    async fn names_resolving_to_loopback_are_refused_at_connect() {
        let client = guarded_client(OutboundPolicy {
            allow_private: false,
            timeout: Duration::from_secs(5),
            max_redirects: 0,
        });
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let text = describe_error(&err);
        assert!(text.contains("not a public address"), "{text}");
    }
}

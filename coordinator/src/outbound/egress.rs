//! Where the coordinator's outgoing HTTPS may go: webhook deliveries and SP-API calls (with
//! their endpoint overrides) share one client whose TCP connector goes through this guard.
//!
//! - [`forbidden`]: the addresses no outgoing call may reach: loopback, private (RFC 1918),
//!   shared (100.64/10), link-local (which holds the cloud metadata address
//!   169.254.169.254), unique-local (fc00::/7, which holds AWS's fd00:ec2::254), NAT64
//!   (64:ff9b::/96 and 64:ff9b:1::/48), 6to4 and IPv4-mapped forms of those, unspecified,
//!   broadcast, multicast, "this network" (0/8) and reserved (240/4) space.
//! - [`GuardedResolver`]: resolves a name and refuses it when *any* of its addresses is
//!   forbidden; the connector then dials exactly the addresses it checked, so a second
//!   resolution (DNS rebinding) cannot slip another address in.
//! - [`GuardedConnector`]: refuses forbidden IP literals (which hyper's connector never
//!   resolves) and hands names to the resolver.
//!
//! Redirects are never followed: the client is hyper's, which has no redirect support, and
//! callers treat a 3xx as a failed delivery.
//!
//! [`EgressPolicy::allow_loopback`] lets loopback through (and nothing else): for tests and
//! development only, behind the coordinator's `--insecure-allow-loopback-outbound` flag.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::warn;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Which outgoing addresses are allowed beyond the public internet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Loopback addresses (127/8, ::1) are allowed. Test and development only.
    pub allow_loopback: bool,
}

impl EgressPolicy {
    /// Whether a connection to `ip` is refused.
    pub fn refuses(self, ip: IpAddr) -> bool {
        if self.allow_loopback && unmapped(ip).is_loopback() {
            return false;
        }
        forbidden(ip)
    }
}

/// `ip`, with an IPv4-mapped IPv6 address turned back into IPv4.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking (198.18/15) and the IETF protocol block (192.0.0/24).
        || (a == 198 && (b & 0xfe) == 18)
        || (a == 192 && b == 0 && v4.octets()[2] == 0)
}

fn forbidden_v6(v6: Ipv6Addr) -> bool {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let s = v6.segments();
    let embedded_v4 = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique-local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64, well-known and local-use
        || s[..6] == [0; 6] // IPv4-compatible (deprecated)
        || (s[0] == 0x2002 && forbidden_v4(embedded_v4(s[1], s[2]))) // 6to4
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// Whether no outgoing call may reach `ip` (see the module doc for the list).
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// Why an outgoing connection was refused. Never names the host (it may be a tenant's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The host is, or resolves to, an address outgoing calls may not reach.
    #[error("refused: the host resolves to a loopback, private, link-local or otherwise internal address")]
    Forbidden,
    /// The name did not resolve.
    #[error("the host name did not resolve: {0}")]
    Resolve(std::io::Error),
    /// The name resolved to no address.
    #[error("the host name resolved to no address")]
    NoAddress,
}

/// Resolves a name and checks every address it gets (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardedResolver {
    policy: EgressPolicy,
}

/// Resolves `host` and checks its addresses under `policy`.
///
/// # Errors
/// [`EgressError`].
pub async fn resolve_checked(
    host: &str,
    port: u16,
    policy: EgressPolicy,
) -> Result<Vec<SocketAddr>, EgressError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return if policy.refuses(ip) {
            Err(EgressError::Forbidden)
        } else {
            Ok(vec![SocketAddr::new(ip, port)])
        };
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((literal, port))
        .await
        .map_err(EgressError::Resolve)?
        .collect();
    if addrs.is_empty() {
        return Err(EgressError::NoAddress);
    }
    if addrs.iter().any(|a| policy.refuses(a.ip())) {
        warn!("outgoing connection refused: the name resolves to an internal address");
        return Err(EgressError::Forbidden);
    }
    Ok(addrs)
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = EgressError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, EgressError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), EgressError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        Box::pin(async move {
            // The connector sets the URL's port on each address afterwards.
            resolve_checked(name.as_str(), 0, policy)
                .await
                .map(IntoIterator::into_iter)
        })
    }
}

/// hyper's HTTP connector with the [`GuardedResolver`], refusing forbidden IP literals too.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    inner: HttpConnector<GuardedResolver>,
    policy: EgressPolicy,
}

impl GuardedConnector {
    /// Wraps `inner`'s settings with the guard of `policy`.
    pub fn new(
        policy: EgressPolicy,
        configure: impl FnOnce(&mut HttpConnector<GuardedResolver>),
    ) -> Self {
        let mut inner = HttpConnector::new_with_resolver(GuardedResolver { policy });
        configure(&mut inner);
        GuardedConnector { inner, policy }
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let host = dst.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if literal
            .parse::<IpAddr>()
            .is_ok_and(|ip| self.policy.refuses(ip))
        {
            warn!("outgoing connection refused: an internal address");
            return Box::pin(async { Err(EgressError::Forbidden.into()) });
        }
        let connecting = self.inner.call(dst);
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for bad in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "ff02::1",
        ] {
            assert!(forbidden(ip(bad)), "{bad}");
        }
        for good in [
            "203.0.113.9",
            "8.8.8.8",
            "2a00:1450:4001::1",
            "2002:808:808::1",
        ] {
            assert!(!forbidden(ip(good)), "{good}");
        }
    }

    #[test]
    fn the_test_flag_lets_loopback_and_nothing_else_through() {
        let p = EgressPolicy {
            allow_loopback: true,
        };
        assert!(!p.refuses(ip("127.0.0.1")) && !p.refuses(ip("::1")));
        assert!(!p.refuses(ip("::ffff:127.0.0.1")));
        assert!(p.refuses(ip("10.0.0.1")) && p.refuses(ip("169.254.169.254")));
        assert!(EgressPolicy::default().refuses(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let strict = EgressPolicy::default();
        assert!(matches!(
            resolve_checked("localhost", 443, strict).await,
            Err(EgressError::Forbidden)
        ));
        assert!(matches!(
            resolve_checked("[::1]", 443, strict).await,
            Err(EgressError::Forbidden)
        ));
        let dev = EgressPolicy {
            allow_loopback: true,
        };
        let addrs = resolve_checked("localhost", 443, dev)
            .await
            .expect("allowed");
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 443));
    }
}

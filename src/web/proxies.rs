//! What a request says about its client once reverse proxies are taken into
//! account: headers that proxies add are believed only when the connection
//! comes from one of `TRUSTED_PROXIES`, since anyone else can write them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;

use crate::config::IpNet;

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(Arc::new(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }

    /// The connecting address, as IPv4 when it is an IPv4-mapped IPv6 one
    /// (what a dual-stack listener reports for IPv4 clients).
    fn peer(request: &ServiceRequest) -> Option<IpAddr> {
        request.peer_addr().map(|addr| addr.ip().to_canonical())
    }

    /// The client's address: the peer, or behind trusted proxies the nearest
    /// address in `X-Forwarded-For` that is not one of them.
    pub fn client_of(&self, request: &ServiceRequest) -> Option<IpAddr> {
        let peer = Self::peer(request)?;
        Some(self.client_behind(peer, &forwarded_for(request.headers())))
    }

    /// Walks `hops` (the `X-Forwarded-For` entries, nearest last) back from the peer.
    pub fn client_behind(&self, peer: IpAddr, hops: &[String]) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// Whether the browser reached the site over HTTPS. This server speaks
    /// plain HTTP itself, so only a trusted proxy that terminates TLS can say
    /// so, with `X-Forwarded-Proto` (or `Forwarded: proto=`).
    pub fn is_https(&self, request: &ServiceRequest) -> bool {
        if !Self::peer(request).is_some_and(|peer| self.trusts(peer)) {
            return false;
        }
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        // The proxy's own value is the last one.
        let forwarded_proto = header("x-forwarded-proto")
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .or_else(|| {
                header("forwarded")?
                    .rsplit(',')
                    .next()?
                    .split(';')
                    .find_map(|pair| pair.trim().strip_prefix("proto="))
                    .map(|proto| proto.trim_matches('"'))
            });
        forwarded_proto.is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    }
}

/// Every `X-Forwarded-For` entry, across all the header's lines, in order:
/// a proxy may add its own line rather than extend the client's.
fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(|hop| hop.trim().to_owned())
        .collect()
}

/// One entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|addr| addr.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(trusted: &[&str]) -> TrustedProxies {
        TrustedProxies::new(trusted.iter().map(|t| t.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn hops(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| (*h).to_owned()).collect()
    }

    #[test]
    fn forwarding_headers_from_strangers_are_ignored() {
        let none = proxies(&[]);
        assert_eq!(
            none.client_behind(ip("203.0.113.9"), &hops(&["1.2.3.4"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "::1"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            trusted.client_behind(peer, &hops(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
        // The left-most entry is whatever the client claimed; only the proxy's own is trusted.
        assert_eq!(
            trusted.client_behind(peer, &hops(&["6.6.6.6", "198.51.100.7", "10.0.0.5"])),
            ip("198.51.100.7")
        );
        assert_eq!(trusted.client_behind(peer, &[]), peer);
        assert_eq!(trusted.client_behind(peer, &hops(&["garbage"])), peer);
    }

    #[test]
    fn entries_with_ports_and_mapped_addresses_are_read() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mapped_peer = ip("::ffff:10.0.0.2").to_canonical();
        assert_eq!(mapped_peer, ip("10.0.0.2"));
        assert_eq!(
            trusted.client_behind(mapped_peer, &hops(&["198.51.100.7:5678"])),
            ip("198.51.100.7")
        );
        assert_eq!(
            trusted.client_behind(mapped_peer, &hops(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn a_second_header_line_added_by_the_proxy_is_the_one_believed() {
        let mut headers = HeaderMap::new();
        let name = actix_web::http::header::HeaderName::from_static("x-forwarded-for");
        headers.append(name.clone(), "6.6.6.6".parse().unwrap());
        headers.append(name, "198.51.100.7".parse().unwrap());
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_behind(ip("10.0.0.2"), &forwarded_for(&headers)),
            ip("198.51.100.7")
        );
    }
}

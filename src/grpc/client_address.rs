//! The client's address: the peer of the connection, or, when that peer is a trusted proxy,
//! the address it forwards in `x-forwarded-for`. Only configured proxies are believed: any
//! client can send the header.
use std::net::IpAddr;

use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::domain::AddressRanges;

pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// The address a management call comes from (see the module's notes). `None` when it cannot
/// be known: no peer address, or a trusted proxy forwarding something that is not an address.
pub fn of_request<T>(request: &Request<T>, trusted_proxies: &AddressRanges) -> Option<IpAddr> {
    resolve(
        request.remote_addr().map(|peer| peer.ip()),
        request.metadata(),
        trusted_proxies,
    )
}

/// The rightmost forwarded address that is not itself a trusted proxy (proxies append the
/// address they saw, so everything left of the first untrusted hop may be forged); the
/// leftmost when every hop is trusted.
fn resolve(
    peer: Option<IpAddr>,
    metadata: &MetadataMap,
    trusted_proxies: &AddressRanges,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if trusted_proxies.is_empty() || !trusted_proxies.contains(peer) {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for value in metadata.get_all(FORWARDED_FOR_HEADER) {
        let text = value.to_str().ok()?;
        for hop in text.split(',') {
            hops.push(parse_hop(hop.trim())?);
        }
    }
    if hops.is_empty() {
        // The proxy called on its own behalf.
        return Some(peer);
    }
    let leftmost = hops[0];
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted_proxies.contains(*hop))
            .unwrap_or(leftmost),
    )
}

/// One hop: an address, perhaps with a port (`10.0.0.1:443`, `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(addr) = hop.parse::<IpAddr>() {
        return Some(addr.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> MetadataMap {
        let mut md = MetadataMap::new();
        for v in values {
            md.append(FORWARDED_FOR_HEADER, v.parse().unwrap());
        }
        md
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = AddressRanges::parse(&["10.9.0.0/16"]).unwrap();
        let md = forwarded(&["1.2.3.4"]);
        assert_eq!(
            resolve(Some(ip("192.168.0.5")), &md, &proxies),
            Some(ip("192.168.0.5"))
        );
        assert_eq!(
            resolve(Some(ip("192.168.0.5")), &md, &AddressRanges::default()),
            Some(ip("192.168.0.5"))
        );
    }

    #[test]
    fn a_trusted_proxy_forwards_the_rightmost_untrusted_hop() {
        let proxies = AddressRanges::parse(&["10.9.0.0/16"]).unwrap();
        let md = forwarded(&["6.6.6.6, 203.0.113.7", "10.9.0.2"]);
        assert_eq!(
            resolve(Some(ip("10.9.0.1")), &md, &proxies),
            Some(ip("203.0.113.7"))
        );
        let only_proxies = forwarded(&["10.9.0.3:8080"]);
        assert_eq!(
            resolve(Some(ip("10.9.0.1")), &only_proxies, &proxies),
            Some(ip("10.9.0.3"))
        );
        assert_eq!(
            resolve(Some(ip("10.9.0.1")), &MetadataMap::new(), &proxies),
            Some(ip("10.9.0.1"))
        );
    }

    #[test]
    fn garbage_from_a_trusted_proxy_is_an_unknown_address() {
        let proxies = AddressRanges::parse(&["10.9.0.0/16"]).unwrap();
        let md = forwarded(&["not-an-address"]);
        assert_eq!(resolve(Some(ip("10.9.0.1")), &md, &proxies), None);
        assert_eq!(resolve(None, &md, &proxies), None);
    }
}

//! Client address ranges (CIDRs): where a token, or an application's approval, may be used from.
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

use super::echo;

/// A validated list of address ranges. Empty means "from anywhere".
///
/// A bare address is a range of one (`10.0.0.7` is `10.0.0.7/32`); host bits are cleared
/// (`10.1.2.3/8` is `10.0.0.0/8`), so what is stored and shown is what is checked.
///
/// IPv4-mapped IPv6 is IPv4 everywhere: a client reached over IPv6 as `::ffff:10.0.0.7` is
/// checked as `10.0.0.7`, and a range written in the mapped form (`::ffff:10.0.0.0/104`,
/// any range inside `::ffff:0:0/96`) is the IPv4 range it maps (`10.0.0.0/8`), stored and
/// shown so. An IPv6 range holds IPv6 clients only: `::/0` holds no IPv4 client, mapped or
/// not (an IPv4 range such as `0.0.0.0/0` does).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AddressRanges {
    /// The ranges as given (normalised): what is stored and shown.
    nets: Box<[IpNet]>,
    /// The same as (network, mask) pairs, per family, computed once: a check is a masked
    /// compare per range, a few nanoseconds for a list of 16.
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl AddressRanges {
    /// Most ranges one list may hold: a check is a scan, and this keeps it well under a microsecond.
    pub const MAX: usize = 64;

    /// Parses every entry; the error names the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        if entries.len() > Self::MAX {
            return Err(format!(
                "may hold at most {} address ranges, got {}",
                Self::MAX,
                entries.len()
            ));
        }
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(addr) => IpNet::from(addr),
                    Err(_) => {
                        return Err(format!(
                            "{} is not an address range: write it as 10.0.0.0/8, 2001:db8::/32 or a single address",
                            echo(entry)
                        ));
                    }
                },
            };
            let net = unmapped(net);
            if !ranges.contains(&net) {
                ranges.push(net);
            }
        }
        Ok(AddressRanges::of(ranges))
    }

    fn of(nets: Vec<IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &nets {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.netmask()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.netmask()))),
            }
        }
        AddressRanges {
            nets: nets.into_boxed_slice(),
            v4: v4.into_boxed_slice(),
            v6: v6.into_boxed_slice(),
        }
    }

    /// The form kept in the database: ranges separated by commas; `None` for no ranges.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_strings().join(","))
    }

    /// Reads the stored form back.
    pub fn from_stored(stored: Option<&str>) -> Result<Self, String> {
        match stored.filter(|s| !s.is_empty()) {
            None => Ok(AddressRanges::default()),
            Some(text) => Self::parse(&text.split(',').collect::<Vec<_>>()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.nets.len()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.nets.iter().map(ToString::to_string).collect()
    }

    /// Whether `addr` is in one of the ranges. An empty list contains nothing: callers ask
    /// `permits` when an empty list means "anywhere".
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|&(network, mask)| a & mask == network)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|&(network, mask)| a & mask == network)
            }
        }
    }

    /// Whether every range of this list lies inside one of `bound`'s.
    pub fn within(&self, bound: &AddressRanges) -> bool {
        self.nets
            .iter()
            .all(|net| bound.nets.iter().any(|outer| outer.contains(net)))
    }

    /// Whether a client at `client` may pass: no ranges, or a known address in one of them.
    /// An unknown address never passes a restriction: it fails closed.
    pub fn permits(&self, client: Option<IpAddr>) -> bool {
        self.is_empty() || client.is_some_and(|addr| self.contains(addr))
    }
}

/// A range inside `::ffff:0:0/96` as the IPv4 range it maps; any other range as it is.
fn unmapped(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_single_addresses() {
        let ranges = AddressRanges::parse(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]).unwrap();
        assert!(ranges.contains(ip("10.200.3.4")));
        assert!(ranges.contains(ip("192.168.1.7")));
        assert!(!ranges.contains(ip("192.168.1.8")));
        assert!(ranges.contains(ip("2001:db8::1")));
        assert!(!ranges.contains(ip("2001:db9::1")));
        assert_eq!(
            ranges.to_strings(),
            ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]
        );
    }

    #[test]
    fn edges_of_a_range_and_whole_spaces() {
        let ranges = AddressRanges::parse(&["10.1.0.0/16", "0.0.0.0/0"]).unwrap();
        assert!(ranges.contains(ip("255.255.255.255")));
        let one = AddressRanges::parse(&["10.1.0.0/16"]).unwrap();
        assert!(one.contains(ip("10.1.0.0")) && one.contains(ip("10.1.255.255")));
        assert!(!one.contains(ip("10.0.255.255")) && !one.contains(ip("10.2.0.0")));
        assert!(
            !one.contains(ip("::1")),
            "an IPv6 client is not in an IPv4 range"
        );
        let all_v6 = AddressRanges::parse(&["::/0"]).unwrap();
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(!all_v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_ipv4_is_checked_as_ipv4() {
        let ranges = AddressRanges::parse(&["10.0.0.0/8"]).unwrap();
        assert!(ranges.contains(ip("::ffff:10.1.2.3")));
        assert!(!ranges.contains(ip("::ffff:11.1.2.3")));
    }

    #[test]
    fn mapped_ranges_are_ipv4_ranges() {
        let ranges = AddressRanges::parse(&[
            "::ffff:10.0.0.0/104",
            "::ffff:c0a8:107",
            "::FFFF:172.16.0.0/108",
            "::ffff:0:0/96",
        ])
        .unwrap();
        assert_eq!(
            ranges.to_strings(),
            ["10.0.0.0/8", "192.168.1.7/32", "172.16.0.0/12", "0.0.0.0/0"]
        );
        let ten = AddressRanges::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        assert_eq!(ten, AddressRanges::parse(&["10.0.0.0/8"]).unwrap());
        for client in ["10.1.2.3", "::ffff:10.1.2.3"] {
            assert!(ten.contains(ip(client)), "{client}");
        }
        for client in ["11.1.2.3", "::ffff:11.1.2.3", "::a01:203", "2001:db8::1"] {
            assert!(!ten.contains(ip(client)), "{client}");
        }
        // Host bits of the mapped form are cleared too; duplicates of either form are one.
        let same = AddressRanges::parse(&["::ffff:10.1.2.3/104", "10.0.0.0/8"]).unwrap();
        assert_eq!(same.to_strings(), ["10.0.0.0/8"]);
        // Ranges reaching outside the mapped block stay IPv6, and hold IPv6 clients only.
        let wide = AddressRanges::parse(&["::ffff:0:0/95", "::/0"]).unwrap();
        assert_eq!(wide.to_strings(), ["::fffe:0:0/95", "::/0"]);
        assert!(!wide.contains(ip("::ffff:10.1.2.3")) && !wide.contains(ip("10.1.2.3")));
        // Stored ranges of the mapped form (kept before this rule) read as IPv4.
        assert_eq!(
            AddressRanges::from_stored(Some("::ffff:10.0.0.0/104")).unwrap(),
            ten
        );
    }

    #[test]
    fn a_bad_entry_is_echoed_short() {
        let long = format!("10.0.0.0/8{}", "z".repeat(100 * 1024));
        let err = AddressRanges::parse(&[long.as_str()]).unwrap_err();
        assert!(err.len() < 300, "{err}");
        assert!(err.contains("(102410 bytes)"), "{err}");
    }

    #[test]
    fn host_bits_are_cleared_and_duplicates_dropped() {
        let ranges = AddressRanges::parse(&["10.1.2.3/8", "10.0.0.0/8"]).unwrap();
        assert_eq!(ranges.to_strings(), ["10.0.0.0/8"]);
    }

    #[test]
    fn empty_permits_anyone_and_unknown_fails_closed() {
        assert!(AddressRanges::default().permits(None));
        let ranges = AddressRanges::parse(&["10.0.0.0/8"]).unwrap();
        assert!(!ranges.permits(None));
        assert!(ranges.permits(Some(ip("10.0.0.1"))));
    }

    #[test]
    fn bad_entries_and_too_many_are_refused() {
        assert!(
            AddressRanges::parse(&["10.0.0.0/33"])
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
        assert!(AddressRanges::parse(&["example.com"]).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("10.0.{i}.0/24")).collect();
        assert!(AddressRanges::parse(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn stored_form_round_trips() {
        let ranges = AddressRanges::parse(&["10.0.0.0/8", "::1"]).unwrap();
        let stored = ranges.to_stored().unwrap();
        assert_eq!(AddressRanges::from_stored(Some(&stored)).unwrap(), ranges);
        assert_eq!(AddressRanges::default().to_stored(), None);
        assert_eq!(
            AddressRanges::from_stored(None).unwrap(),
            AddressRanges::default()
        );
    }
}

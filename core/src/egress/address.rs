//! Special-purpose IP ranges and the IPv4 addresses embedded in IPv6 addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IPv4 ranges that never reach the public internet, or reach the host itself, its neighbours or
/// a cloud metadata service. Sources: RFC 6890 and the IANA IPv4 special-purpose registry.
const SPECIAL_IPV4: [(Ipv4Addr, u8, &str); 10] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this-network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared-address-space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// IPv6 ranges of the same kind, from the IANA IPv6 special-purpose registry.
const SPECIAL_IPV6: [(Ipv6Addr, u8, &str); 6] = [
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// The special-purpose class of `address` (`"loopback"`, `"private"`, ...), or `None` for an
/// ordinary unicast address.
///
/// An IPv6 address that embeds an IPv4 address (see [`embedded_ipv4`]) is special when the
/// embedded address is.
pub fn special_purpose(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => special_ipv4(v4),
        IpAddr::V6(v6) => {
            let direct = SPECIAL_IPV6
                .iter()
                .find(|(network, prefix, _)| contains_v6(*network, *prefix, v6))
                .map(|(_, _, class)| *class);
            direct.or_else(|| embedded_ipv4(v6).into_iter().flatten().find_map(special_ipv4))
        }
    }
}

fn special_ipv4(address: Ipv4Addr) -> Option<&'static str> {
    SPECIAL_IPV4
        .iter()
        .find(|(network, prefix, _)| Ipv4Net::new(*network, *prefix).is_ok_and(|net| net.contains(&address)))
        .map(|(_, _, class)| *class)
}

fn contains_v6(network: Ipv6Addr, prefix: u8, address: Ipv6Addr) -> bool {
    Ipv6Net::new(network, prefix).is_ok_and(|net| net.contains(&address))
}

/// The IPv4 addresses an IPv6 address carries: IPv4-mapped (`::ffff:0:0/96`), IPv4-translated
/// (`::ffff:0:0:0/96`), IPv4-compatible
/// (`::/96`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`, bits 16 to 47) and Teredo (`2001::/32`,
/// the server in bits 32 to 63 and the client, inverted, in the last 32 bits).
pub fn embedded_ipv4(address: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let segments = address.segments();
    let octets = address.octets();
    let last_four = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);

    if let Some(mapped) = address.to_ipv4_mapped() {
        return [Some(mapped), None];
    }
    // IPv4-translated (`::ffff:0:0:0/96`, RFC 2765).
    if segments[..4].iter().all(|segment| *segment == 0) && segments[4] == 0xffff && segments[5] == 0 {
        return [Some(last_four), None];
    }
    // IPv4-compatible: 96 zero bits, leaving out :: and ::1, which are IPv6 addresses of their own.
    if segments[..6].iter().all(|segment| *segment == 0) && u32::from(last_four) > 1 {
        return [Some(last_four), None];
    }
    if contains_v6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96, address) {
        return [Some(last_four), None];
    }
    if segments[0] == 0x2002 {
        return [Some(Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])), None];
    }
    if segments[0] == 0x2001 && segments[1] == 0 {
        let server = Ipv4Addr::new(octets[4], octets[5], octets[6], octets[7]);
        let client = Ipv4Addr::from(!u32::from(last_four));
        return [Some(server), Some(client)];
    }
    [None, None]
}

/// Whether `network` contains `address` or one of the IPv4 addresses `address` embeds.
pub fn network_contains(network: IpNet, address: IpAddr) -> bool {
    if network.contains(&address) {
        return true;
    }
    match (network, address) {
        (IpNet::V4(network), IpAddr::V6(v6)) => embedded_ipv4(v6).into_iter().flatten().any(|v4| network.contains(&v4)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Option<&'static str> {
        special_purpose(text.parse().unwrap())
    }

    #[test]
    fn special_ipv4_ranges_classified() {
        let cases = [
            ("0.1.2.3", "this-network"),
            ("10.9.8.7", "private"),
            ("100.64.0.1", "shared-address-space"),
            ("100.127.255.254", "shared-address-space"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.255", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
        ];
        for (address, expected) in cases {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_not_special() {
        for address in ["1.1.1.1", "100.128.0.1", "172.32.0.1", "198.20.0.1", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(class(address), None, "{address}");
        }
    }

    #[test]
    fn special_ipv6_ranges_classified() {
        let cases = [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "unique-local"),
            ("fc00::1", "unique-local"),
            ("ff02::1", "multicast"),
        ];
        for (address, expected) in cases {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn embedded_ipv4_checked() {
        let cases = [
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:a9fe:a9fe", "link-local"),
            ("::127.0.0.1", "loopback"),
            ("::10.0.0.1", "private"),
            ("::ffff:0:7f00:1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            // Teredo: server 127.0.0.1, client 8.8.8.8 inverted.
            ("2001:0:7f00:1::f7f7:f7f7", "loopback"),
            // Teredo: server 8.8.8.8, client 10.0.0.1 inverted.
            ("2001:0:808:808::f5ff:fffe", "private"),
        ];
        for (address, expected) in cases {
            assert_eq!(class(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn ipv4_network_matches_mapped_address() {
        let network: IpNet = "127.0.0.2/32".parse().unwrap();
        assert!(network_contains(network, "::ffff:127.0.0.2".parse().unwrap()));
        assert!(!network_contains(network, "::ffff:127.0.0.1".parse().unwrap()));
    }
}

//! Fuzzes destination host parsing and special-purpose address classification.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use palisade_core::egress::address::{embedded_ipv4, special_purpose};
use palisade_core::egress::{parse_destination, Destination};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 16 {
        check_address(data[..16].try_into().unwrap());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_host(text);
    }
});

fn check_address(octets: [u8; 16]) {
    let v6 = Ipv6Addr::from(octets);
    let special = special_purpose(IpAddr::V6(v6));
    // An IPv6 address is never less special than an IPv4 address it carries.
    for v4 in embedded_ipv4(v6).into_iter().flatten() {
        if special_purpose(IpAddr::V4(v4)).is_some() {
            assert!(special.is_some(), "{v6} carries {v4}");
        }
    }
    let v4 = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
    let mapped = IpAddr::V6(v4.to_ipv6_mapped());
    assert_eq!(special_purpose(IpAddr::V4(v4)).is_some(), special_purpose(mapped).is_some(), "{v4}");
}

fn check_host(text: &str) {
    match parse_destination(text) {
        Ok(Destination::Name(name)) => {
            assert!(!name.ends_with('.'));
            assert!(name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_.".contains(&byte)));
            assert!(name.parse::<Ipv4Addr>().is_err(), "{text:?} became the address {name}");
            // A normalised name parses to itself.
            assert_eq!(parse_destination(&name), Ok(Destination::Name(name.clone())));
        }
        Ok(Destination::Address(_)) | Err(_) => {}
    }
}

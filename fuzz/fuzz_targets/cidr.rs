//! IP allowlist networks (`Cidr::parse`, from the tenant's `PUT …/ip-allowlist`) on arbitrary
//! strings. Never panics; an accepted network prints in a form that parses back to itself and
//! contains its own address; an IPv4-mapped IPv6 address is judged as its IPv4 address.
#![no_main]

use std::net::{IpAddr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sealprint_coordinator::api::fuzzing::Cidr;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Some(cidr) = Cidr::parse(s) else {
        return;
    };
    let shown = cidr.to_string();
    assert_eq!(Cidr::parse(&shown), Some(cidr), "{shown:?} from {s:?}");
    let (addr, len) = shown.rsplit_once('/').expect("addr/len");
    let addr: IpAddr = addr.parse().expect("an address");
    let len: u8 = len.parse().expect("a length");
    assert!(
        cidr.contains(addr),
        "{shown} does not contain its own address"
    );
    if let IpAddr::V4(v4) = addr {
        assert!(len <= 32);
        assert!(cidr.contains(IpAddr::V6(v4.to_ipv6_mapped())));
    } else {
        assert!(len <= 128);
        assert!(addr.to_string().contains(':'));
    }
    if len == 0 {
        let other = match addr {
            IpAddr::V4(_) => IpAddr::from([203, 0, 113, 9]),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
        };
        assert!(cidr.contains(other), "{shown} does not contain {other}");
    }
});

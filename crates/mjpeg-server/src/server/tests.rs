//! Unit tests of the server.

use super::*;

#[test]
fn listen_addresses_parse_as_users_type_them() {
    assert_eq!("8080".parse(), Ok(ListenAddr::port(8080)));
    assert_eq!(
        "0.0.0.0:80".parse(),
        Ok(ListenAddr::Tcp("0.0.0.0:80".parse().unwrap()))
    );
    assert_eq!(
        "localhost:8080".parse(),
        Ok(ListenAddr::Host("localhost".into(), 8080))
    );
    assert_eq!(
        "cam-1.lan:0".parse(),
        Ok(ListenAddr::Host("cam-1.lan".into(), 0))
    );
    for bad in [
        "",
        "65536",
        "localhost",
        ":80",
        "::1:80",
        "1.2.3:80",
        "a b:80",
        "host:",
        "host:x",
        "unix:",
    ] {
        assert!(bad.parse::<ListenAddr>().is_err(), "{bad:?}");
    }
}

/// Every string either fails to parse or parses to an address that
/// prints back as something that parses to the same address; a bare
/// port is always loopback.
#[test]
fn listen_parsing_round_trips_on_random_input() {
    const ALPHABET: &[u8] = b"0123456789:.[]ablocsthx-_ /unix";
    let mut rng = crate::xorshift::XorShift::new(0x9E37_79B9_7F4A_7C15_u64);
    let mut next = move || rng.next();
    for _ in 0..50_000 {
        let len = (next() % 16) as usize;
        let s: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char)
            .collect();
        let Ok(addr) = s.parse::<ListenAddr>() else {
            continue;
        };
        let again: ListenAddr = addr.to_string().parse().unwrap();
        assert_eq!(again, addr, "{s:?}");
        if s.bytes().all(|b| b.is_ascii_digit()) {
            assert!(
                matches!(addr, ListenAddr::Tcp(a) if a.ip().is_loopback()),
                "{s:?}"
            );
        }
    }
    for port in 0..=u16::MAX {
        assert_eq!(port.to_string().parse(), Ok(ListenAddr::port(port)));
    }
}

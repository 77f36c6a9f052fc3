//! How many connections each client address holds, so that one host cannot take every
//! connection the server allows: a client that opens connections and sends nothing, again and
//! again, would otherwise lock the health checks and the operator out.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Connections held, per client (an IPv4 address, or an IPv6 /64: what one host is given).
pub struct PerAddress {
    most: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place, given back when it is dropped.
pub struct Place {
    counts: Arc<PerAddress>,
    client: IpAddr,
}

impl PerAddress {
    /// At most `most` connections per client.
    pub fn new(most: usize) -> Arc<Self> {
        Arc::new(Self { most, held: Mutex::new(HashMap::new()) })
    }

    /// A place for one more connection from `address`, unless its client holds `most` already.
    pub fn take(self: &Arc<Self>, address: IpAddr) -> Option<Place> {
        let client = client(address);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client).or_default();
        if *count >= self.most {
            return None;
        }
        *count += 1;
        Some(Place { counts: Arc::clone(self), client })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Entry::Occupied(mut count) = held.entry(self.client) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// The client an address belongs to: IPv4 (also as IPv6-mapped) as it is, IPv6 by its /64, which
/// one host gets whole and can spread its connections over.
fn client(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_holds_at_most_its_share_and_gets_places_back() {
        let counts = PerAddress::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.take(a).unwrap();
        let _second = counts.take(a).unwrap();
        assert!(counts.take(a).is_none(), "a third from the same client");
        assert!(counts.take("::ffff:192.0.2.1".parse().unwrap()).is_none(), "nor through its IPv6-mapped form");
        assert!(counts.take(b).is_some(), "another client is not held back");
        drop(first);
        assert!(counts.take(a).is_some(), "a closed connection gives its place back");
    }

    #[test]
    fn an_ipv6_host_is_its_64() {
        let counts = PerAddress::new(1);
        let _held = counts.take("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(counts.take("2001:db8:1:2:ffff::9".parse().unwrap()).is_none(), "the same /64");
        assert!(counts.take("2001:db8:1:3::1".parse().unwrap()).is_some(), "another /64");
    }

    #[test]
    fn nothing_is_kept_for_clients_gone() {
        let counts = PerAddress::new(3);
        let places: Vec<Place> = (0..3).map(|_| counts.take("192.0.2.7".parse().unwrap()).unwrap()).collect();
        drop(places);
        assert!(counts.held.lock().unwrap().is_empty());
    }
}

//! Node names as upstream gives them: every node has an IPv4 rpc_address and a host:port
//! (`host_port`), and upstream sends both in every message and stored configuration. A node's
//! host:port is the reverse-DNS name of its IP with its port (`localhost:34801` for
//! 127.0.0.1); the name a node reports for itself wins over a lookup. The book below keeps the
//! address → host:port map for the process, so senders fill the `hp_*` twins of address fields
//! from it, and receivers teach it what peers report.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{OnceLock, RwLock};

use crate::idl::dsn::{HostPort, RpcAddress};
use crate::idl::dsn_layer2::PartitionConfiguration;

/// At most this many addresses (and IPs) are remembered: a peer may name any number of
/// nodes, the book must not grow without bound (past it, names are looked up again).
const MAX_ENTRIES: usize = 65_536;

/// The process-wide address → host:port map.
pub struct HostPortBook {
    map: RwLock<HashMap<u64, HostPort>>,
    /// Reverse lookups by IP, failures included (as `None`), so each IP is looked up once.
    names: RwLock<HashMap<Ipv4Addr, Option<String>>>,
    lookup: fn(Ipv4Addr) -> Option<String>,
}

/// The reverse-DNS name of an IP, as upstream's `host_port::from_address` asks for it
/// (a name is required: an IP without one gives `None`).
pub fn reverse_lookup(ip: Ipv4Addr) -> Option<String> {
    let name = dns_lookup::lookup_addr(&IpAddr::V4(ip)).ok()?;
    // getnameinfo without NI_NAMEREQD answers the numeric form when no name exists.
    if name.is_empty() || name.parse::<IpAddr>().is_ok() {
        None
    } else {
        Some(name)
    }
}

/// The IPv4 literal as the host (what a node without a reverse-DNS name goes by here).
pub fn literal(a: RpcAddress) -> HostPort {
    if a.is_invalid() {
        HostPort::invalid()
    } else {
        HostPort::new(a.ip().to_string(), a.port())
    }
}

pub fn book() -> &'static HostPortBook {
    static BOOK: OnceLock<HostPortBook> = OnceLock::new();
    BOOK.get_or_init(|| HostPortBook::with_lookup(reverse_lookup))
}

impl HostPortBook {
    pub fn with_lookup(lookup: fn(Ipv4Addr) -> Option<String>) -> HostPortBook {
        HostPortBook {
            map: RwLock::new(HashMap::new()),
            names: RwLock::new(HashMap::new()),
            lookup,
        }
    }

    /// Records what a peer reported: the host:port that goes with an address.
    pub fn learn(&self, addr: Option<RpcAddress>, hp: Option<&HostPort>) {
        let (Some(a), Some(h)) = (addr, hp) else {
            return;
        };
        if a.is_invalid() || h.is_invalid() || h.host.is_empty() || h.port != a.port() {
            return;
        }
        if self
            .map
            .read()
            .ok()
            .and_then(|m| m.get(&a.0).cloned())
            .as_ref()
            == Some(h)
        {
            return;
        }
        if let Ok(mut m) = self.map.write() {
            if m.len() < MAX_ENTRIES || m.contains_key(&a.0) {
                m.insert(a.0, h.clone());
            }
        }
    }

    /// Learns the pairs of a configuration whose hp lists match its address lists.
    pub fn learn_pc(&self, pc: &PartitionConfiguration) {
        self.learn(pc.primary, pc.hp_primary.as_ref());
        for (addrs, hps) in [
            (&pc.secondaries, &pc.hp_secondaries),
            (&pc.last_drops, &pc.hp_last_drops),
        ] {
            if let (Some(a), Some(h)) = (addrs, hps) {
                if a.len() == h.len() {
                    for (a, h) in a.iter().zip(h) {
                        self.learn(Some(*a), Some(h));
                    }
                }
            }
        }
    }

    /// The host:port of an address: what the node reported, else the reverse-DNS name of its
    /// IP, else the IP literal. Invalid for the invalid address.
    pub fn hp_of(&self, a: RpcAddress) -> HostPort {
        if a.is_invalid() {
            return HostPort::invalid();
        }
        if let Some(h) = self.map.read().ok().and_then(|m| m.get(&a.0).cloned()) {
            return h;
        }
        let ip = a.ip();
        let cached = self.names.read().ok().and_then(|m| m.get(&ip).cloned());
        let name = match cached {
            Some(n) => n,
            None => {
                let n = (self.lookup)(ip);
                if let Ok(mut m) = self.names.write() {
                    if m.len() < MAX_ENTRIES {
                        m.insert(ip, n.clone());
                    }
                }
                n
            }
        };
        match name {
            Some(host) => HostPort::new(host, a.port()),
            None => literal(a),
        }
    }

    /// Sets the three hp twins of a configuration from its address fields (same order).
    pub fn fill_pc(&self, pc: &mut PartitionConfiguration) {
        pc.hp_primary = Some(self.hp_of(pc.primary.unwrap_or(RpcAddress::INVALID)));
        pc.hp_secondaries = Some(
            pc.secondaries
                .iter()
                .flatten()
                .map(|a| self.hp_of(*a))
                .collect(),
        );
        pc.hp_last_drops = Some(
            pc.last_drops
                .iter()
                .flatten()
                .map(|a| self.hp_of(*a))
                .collect(),
        );
    }

    /// A copy of `pc` with its hp twins filled.
    pub fn filled(&self, pc: &PartitionConfiguration) -> PartitionConfiguration {
        let mut p = pc.clone();
        self.fill_pc(&mut p);
        p
    }
}

/// Removes the three hp twins of a configuration (kept by address only).
pub fn clear_pc(pc: &mut PartitionConfiguration) {
    pc.hp_primary = None;
    pc.hp_secondaries = None;
    pc.hp_last_drops = None;
}

/// Parses the meta-state JSON form of a host:port: `host:port`, or `invalid host_port`.
pub fn from_text(text: &str) -> Option<HostPort> {
    if text == "invalid host_port" {
        return Some(HostPort::invalid());
    }
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    if host.is_empty() {
        return None;
    }
    Some(HostPort::new(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(ip: Ipv4Addr) -> Option<String> {
        (ip == Ipv4Addr::new(10, 0, 0, 1)).then(|| "node1.example".to_string())
    }

    #[test]
    fn lookup_then_literal_then_reported() {
        let b = HostPortBook::with_lookup(named);
        let a1 = RpcAddress::from_ipv4(Ipv4Addr::new(10, 0, 0, 1), 34801);
        let a2 = RpcAddress::from_ipv4(Ipv4Addr::new(10, 0, 0, 2), 34802);
        assert_eq!(b.hp_of(a1), HostPort::new("node1.example", 34801));
        assert_eq!(b.hp_of(a2), HostPort::new("10.0.0.2", 34802));
        assert!(b.hp_of(RpcAddress::INVALID).is_invalid());
        b.learn(Some(a2), Some(&HostPort::new("node2", 34802)));
        assert_eq!(b.hp_of(a2), HostPort::new("node2", 34802));
        // A report whose port differs from the address is not believed.
        b.learn(Some(a2), Some(&HostPort::new("other", 1)));
        assert_eq!(b.hp_of(a2), HostPort::new("node2", 34802));
    }

    #[test]
    fn fill_keeps_order_and_length() {
        let b = HostPortBook::with_lookup(|_| None);
        let ip = Ipv4Addr::new(10, 0, 0, 9);
        let mut pc = PartitionConfiguration {
            primary: Some(RpcAddress::from_ipv4(ip, 1)),
            secondaries: Some(vec![
                RpcAddress::from_ipv4(ip, 3),
                RpcAddress::from_ipv4(ip, 2),
            ]),
            last_drops: Some(vec![]),
            ..Default::default()
        };
        b.fill_pc(&mut pc);
        assert_eq!(pc.hp_primary, Some(HostPort::new("10.0.0.9", 1)));
        assert_eq!(
            pc.hp_secondaries,
            Some(vec![
                HostPort::new("10.0.0.9", 3),
                HostPort::new("10.0.0.9", 2)
            ])
        );
        assert_eq!(pc.hp_last_drops, Some(vec![]));
        pc.primary = Some(RpcAddress::INVALID);
        b.fill_pc(&mut pc);
        assert_eq!(pc.hp_primary, Some(HostPort::invalid()));
    }

    #[test]
    fn text_forms() {
        assert_eq!(
            from_text("localhost:34801"),
            Some(HostPort::new("localhost", 34801))
        );
        assert_eq!(from_text("invalid host_port"), Some(HostPort::invalid()));
        assert_eq!(from_text("nope"), None);
        assert_eq!(from_text(":1"), None);
    }

    #[test]
    fn localhost_has_a_name() {
        // Every Linux /etc/hosts names 127.0.0.1; upstream's onebox relies on it too.
        assert!(reverse_lookup(Ipv4Addr::LOCALHOST).is_some());
    }
}

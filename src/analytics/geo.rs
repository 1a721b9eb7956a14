//! Country of an IP address from a local MaxMind-format database: the bundled DB-IP Country Lite
//! (CC BY 4.0) or any GeoLite2/DB-IP file from `geoip_db`. Both record shapes are read:
//! `{country_code}` (ip-location-db) and GeoIP2's `{country: {iso_code}}`. Private, loopback and
//! other non-public addresses are "unknown". No network call, ever.

use std::net::IpAddr;

use maxminddb::Reader;
use serde::Deserialize;

/// The bundled database (see assets/geo/README.md for its origin and licence).
static BUNDLED: &[u8] = include_bytes!("../../assets/geo/dbip-country.mmdb");

pub const ATTRIBUTION_HTML: &str = r#"<a href="https://db-ip.com">IP Geolocation by DB-IP</a>"#;

pub enum Geo {
    Bundled(Reader<&'static [u8]>),
    File(Reader<Vec<u8>>),
}

#[derive(Deserialize)]
struct Record {
    country_code: Option<String>,
    country: Option<Country>,
    registered_country: Option<Country>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

impl Geo {
    /// The configured file, or the bundled database.
    pub fn open(path: Option<&str>) -> anyhow::Result<Geo> {
        match path {
            Some(p) => {
                Ok(Geo::File(Reader::open_readfile(p).map_err(|e| anyhow::anyhow!("cannot read `geoip_db` {p}: {e}"))?))
            }
            None => Ok(Geo::Bundled(
                Reader::from_source(BUNDLED).map_err(|e| anyhow::anyhow!("bundled geo database: {e}"))?,
            )),
        }
    }

    /// ISO 3166-1 alpha-2 code, or "unknown".
    pub fn country(&self, ip: IpAddr) -> String {
        if !is_public(ip) {
            return "unknown".into();
        }
        let rec: Option<Record> = match self {
            Geo::Bundled(r) => r.lookup(ip).ok().and_then(|l| l.decode::<Record>().ok().flatten()),
            Geo::File(r) => r.lookup(ip).ok().and_then(|l| l.decode::<Record>().ok().flatten()),
        };
        rec.and_then(|r| {
            r.country_code
                .or_else(|| r.country.and_then(|c| c.iso_code))
                .or_else(|| r.registered_country.and_then(|c| c.iso_code))
        })
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or_else(|| "unknown".into())
    }
}

/// Globally routable unicast addresses only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] == 0x2001 && seg[1] == 0x0db8))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn the_bundled_database_knows_public_addresses() {
        let g = Geo::open(None).expect("bundled db");
        // What this edition of DB-IP Country Lite says (assets/geo/README.md names the edition).
        assert_eq!(g.country(ip("8.8.8.8")), "US");
        assert_eq!(g.country(ip("81.2.69.142")), "GB");
        assert_eq!(g.country(ip("193.0.6.139")), "NL");
        assert_eq!(g.country(ip("133.242.0.3")), "JP");
        assert_eq!(g.country(ip("2001:4860:4860::8888")), "CA");
    }

    #[test]
    fn private_and_loopback_addresses_are_unknown() {
        let g = Geo::open(None).expect("bundled db");
        for a in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "::1", "fe80::1", "fd00::1", "100.64.0.1"] {
            assert_eq!(g.country(ip(a)), "unknown", "{a}");
        }
    }

    /// A minimal MaxMind DB writer (IPv4 tree, 24-bit records) for test databases.
    mod mmdb {
        enum Rec {
            Empty,
            Node(usize),
            Data(usize),
        }

        fn ctrl(kind: u8, size: usize, out: &mut Vec<u8>) {
            if kind <= 7 {
                out.push((kind << 5) | size as u8);
            } else {
                out.push(size as u8);
                out.push(kind - 7);
            }
        }

        pub fn string(s: &str, out: &mut Vec<u8>) {
            ctrl(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }

        fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
            let bytes: Vec<u8> = v.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
            ctrl(kind, bytes.len(), out);
            out.extend_from_slice(&bytes);
        }

        pub fn map(n: usize, out: &mut Vec<u8>) {
            ctrl(7, n, out);
        }

        /// Builds a database where each (a.b.c.d, prefix length) maps to its encoded record.
        pub fn build(entries: &[([u8; 4], u8, Vec<u8>)]) -> Vec<u8> {
            let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
            let mut data = Vec::new();
            for (ip, len, record) in entries {
                let offset = data.len();
                data.extend_from_slice(record);
                let bits = u32::from_be_bytes(*ip);
                let mut node = 0;
                for i in 0..*len {
                    let bit = ((bits >> (31 - i)) & 1) as usize;
                    if i + 1 == *len {
                        nodes[node][bit] = Rec::Data(offset);
                    } else {
                        node = match nodes[node][bit] {
                            Rec::Node(n) => n,
                            _ => {
                                nodes.push([Rec::Empty, Rec::Empty]);
                                let n = nodes.len() - 1;
                                nodes[node][bit] = Rec::Node(n);
                                n
                            }
                        };
                    }
                }
            }
            let count = nodes.len();
            let mut out = Vec::new();
            for n in &nodes {
                for r in n {
                    let v = match r {
                        Rec::Empty => count,
                        Rec::Node(i) => *i,
                        Rec::Data(off) => count + 16 + off,
                    } as u32;
                    out.extend_from_slice(&v.to_be_bytes()[1..]);
                }
            }
            out.extend_from_slice(&[0u8; 16]);
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
            let mut meta = Vec::new();
            map(9, &mut meta);
            string("binary_format_major_version", &mut meta);
            uint(5, 2, &mut meta);
            string("binary_format_minor_version", &mut meta);
            uint(5, 0, &mut meta);
            string("build_epoch", &mut meta);
            uint(9, 1_700_000_000, &mut meta);
            string("database_type", &mut meta);
            string("Vitrine-Test", &mut meta);
            string("description", &mut meta);
            map(1, &mut meta);
            string("en", &mut meta);
            string("test database", &mut meta);
            string("ip_version", &mut meta);
            uint(5, 4, &mut meta);
            string("languages", &mut meta);
            ctrl(11, 1, &mut meta);
            string("en", &mut meta);
            string("node_count", &mut meta);
            uint(6, count as u64, &mut meta);
            string("record_size", &mut meta);
            uint(5, 24, &mut meta);
            out.extend_from_slice(&meta);
            out
        }
    }

    #[test]
    fn both_record_shapes_are_read_from_a_configured_database() {
        // GeoIP2 shape {country: {iso_code}} for 203.0.113.0/24... is documentation space, so
        // use real public ranges: 81.2.69.0/24 (GeoIP2 shape) and 175.16.199.0/24 (flat shape).
        let mut geoip2 = Vec::new();
        mmdb::map(1, &mut geoip2);
        mmdb::string("country", &mut geoip2);
        mmdb::map(1, &mut geoip2);
        mmdb::string("iso_code", &mut geoip2);
        mmdb::string("SE", &mut geoip2);
        let mut flat = Vec::new();
        mmdb::map(1, &mut flat);
        mmdb::string("country_code", &mut flat);
        mmdb::string("cn", &mut flat);
        let db = mmdb::build(&[([81, 2, 69, 0], 24, geoip2), ([175, 16, 199, 0], 24, flat)]);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("test.mmdb");
        std::fs::write(&path, db).expect("write");
        let g = Geo::open(Some(path.to_str().expect("utf-8"))).expect("opens");
        assert_eq!(g.country(ip("81.2.69.160")), "SE");
        assert_eq!(g.country(ip("175.16.199.7")), "CN");
        assert_eq!(g.country(ip("8.8.8.8")), "unknown", "not in this database");
        assert!(Geo::open(Some("/nonexistent.mmdb")).is_err());
    }
}

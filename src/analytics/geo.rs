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
}

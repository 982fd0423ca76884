//! MaxMind-format databases (`.mmdb`): GeoLite2 / GeoIP2 (ASN, Country, City, Anonymous IP),
//! DB-IP Lite (ASN, Country, City: GeoLite2-compatible layouts) and IPinfo Lite (flat `asn`,
//! `as_name`, `country_code`).
//!
//! One record type reads every layout: the fields are disjoint between them, and decoding skips
//! what a layout does not have. Strings are borrowed from the database buffer, so a lookup
//! allocates only for the fields it keeps (MaxMind strings are UTF-8 in the buffer, always
//! borrowable).
use std::borrow::Cow;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::{EnrichError, Network};

/// One opened database.
pub struct IpDb {
    /// What error messages and `network.sources` call it: the file or object name.
    name: String,
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for IpDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpDb")
            .field("name", &self.name)
            .field("database_type", &self.database_type())
            .finish()
    }
}

impl IpDb {
    pub fn open(path: &Path) -> Result<Self, EnrichError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| EnrichError::Read {
            name: name.clone(),
            why: e.to_string(),
        })?;
        Self::from_bytes(name, bytes)
    }

    /// A database already in memory (an S3 object read at cold start).
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Self, EnrichError> {
        let name = name.into();
        let reader = Reader::from_source(bytes).map_err(|e| EnrichError::Database {
            name: name.clone(),
            why: e.to_string(),
        })?;
        Ok(Self { name, reader })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The metadata's `database_type` (`GeoLite2-ASN`, `DBIP-Country-Lite`, `ipinfo lite.mmdb`…).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Fill the fields of `net` this database knows and `net` does not have yet. Returns whether
    /// the database had a record for the address.
    pub fn fill(&self, ip: IpAddr, net: &mut Network) -> Result<bool, EnrichError> {
        // An IPv4-only database has nothing to say about an IPv6 address: not an error.
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(false);
        }
        let bad = |e: maxminddb::MaxMindDbError| EnrichError::Lookup {
            name: self.name.clone(),
            ip,
            why: e.to_string(),
        };
        let found = self.reader.lookup(ip).map_err(bad)?;
        let Some(rec) = found.decode::<Record>().map_err(bad)? else {
            return Ok(false);
        };
        rec.fill(net);
        Ok(true)
    }
}

/// The union of the layouts' fields, read by one pass over the record's map (no buffering).
#[derive(Default)]
struct Record<'a> {
    // GeoLite2-ASN, DB-IP ASN Lite, GeoIP2 ISP.
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
    // IPinfo Lite: `"asn": "AS15169"`, `"as_name"`, `"country_code"`; its `country` is a name.
    asn: Option<Cow<'a, str>>,
    as_name: Option<&'a str>,
    country_code: Option<&'a str>,
    // GeoLite2 / DB-IP Country and City: `country: {iso_code, names}`, `city: {names: {en}}`.
    country_iso: Option<&'a str>,
    city: Option<&'a str>,
    /// Anonymiser/hosting flags: top level (GeoIP2 Anonymous IP, IPinfo privacy) or `traits`.
    flags: Flags,
}

impl<'de: 'a, 'a> Deserialize<'de> for Record<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Record<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record map")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut r = Record::default();
                while let Some(k) = m.next_key::<&'de str>()? {
                    match k {
                        "autonomous_system_number" => {
                            r.autonomous_system_number = m.next_value()?
                        }
                        "autonomous_system_organization" => {
                            r.autonomous_system_organization = m.next_value()?
                        }
                        "asn" => r.asn = m.next_value::<Lenient>()?.0,
                        "as_name" => r.as_name = m.next_value()?,
                        "country_code" => r.country_code = m.next_value()?,
                        "country" => r.country_iso = m.next_value::<CountryField>()?.iso_code,
                        "city" => r.city = m.next_value::<Named>()?.names.and_then(|n| n.en),
                        "traits" => r.flags.0 |= m.next_value::<Flags>()?.0,
                        other => match Flags::bit(other) {
                            Some(bit) if m.next_value::<Truthy>()?.0 => r.flags.0 |= bit,
                            Some(_) => {}
                            None => {
                                m.next_value::<de::IgnoredAny>()?;
                            }
                        },
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named<'a> {
    #[serde(borrow)]
    names: Option<Names<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

/// `country` is a map with `iso_code` in MaxMind layouts and a plain country name in IPinfo's.
#[derive(Default)]
struct CountryField<'a> {
    iso_code: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for CountryField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = CountryField<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a country map or name")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(CountryField::default())
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Self::Value, M::Error> {
                let mut iso_code = None;
                while let Some(k) = m.next_key::<&'de str>()? {
                    if k == "iso_code" {
                        iso_code = m.next_value()?;
                    } else {
                        m.next_value::<de::IgnoredAny>()?;
                    }
                }
                Ok(CountryField { iso_code })
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A string, or a number written as one (`asn` is `"AS15169"` in IPinfo Lite, a number in some
/// exports).
struct Lenient<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Lenient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Lenient<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(Some(Cow::Owned(v.to_string()))))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Anonymiser and hosting flags as bits; [`Flags::NAMES`] says what each bit is called in the
/// output and which layout keys set it.
#[derive(Default, Clone, Copy)]
struct Flags(u8);

impl Flags {
    /// Output name, then the keys (GeoIP2 Anonymous IP / `traits`, IPinfo privacy) that set it.
    const NAMES: [(&'static str, &'static [&'static str]); 7] = [
        ("anonymous", &["is_anonymous"]),
        ("vpn", &["is_anonymous_vpn", "vpn"]),
        ("proxy", &["is_anonymous_proxy", "is_public_proxy", "proxy"]),
        ("residential_proxy", &["is_residential_proxy"]),
        ("tor", &["is_tor_exit_node", "tor"]),
        ("relay", &["relay"]),
        ("hosting", &["is_hosting_provider", "hosting"]),
    ];

    fn bit(key: &str) -> Option<u8> {
        Self::NAMES
            .iter()
            .position(|(_, keys)| keys.contains(&key))
            .map(|i| 1 << i)
    }

    fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, (name, _))| *name)
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Flags;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of flags")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Flags, M::Error> {
                let mut flags = Flags::default();
                while let Some(k) = m.next_key::<&'de str>()? {
                    match Flags::bit(k) {
                        Some(bit) if m.next_value::<Truthy>()?.0 => flags.0 |= bit,
                        Some(_) => {}
                        None => {
                            m.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(flags)
            }
        }
        d.deserialize_map(V)
    }
}

/// A boolean, or the strings `"true"`/`"false"` some exports use.
struct Truthy(bool);

impl<'de> Deserialize<'de> for Truthy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Truthy;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Truthy, E> {
                Ok(Truthy(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Truthy, E> {
                Ok(Truthy(v.eq_ignore_ascii_case("true")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Truthy, E> {
                Ok(Truthy(v != 0))
            }
        }
        d.deserialize_any(V)
    }
}

fn set_if_none(slot: &mut Option<String>, v: Option<&str>) {
    if slot.is_none() {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            *slot = Some(v.to_string());
        }
    }
}

impl Record<'_> {
    fn fill(&self, net: &mut Network) {
        if net.asn.is_none() {
            net.asn = self.autonomous_system_number.or_else(|| {
                // IPinfo writes `AS15169`; the number is the same identifier.
                self.asn
                    .as_deref()
                    .and_then(|a| a.strip_prefix("AS").unwrap_or(a).parse().ok())
            });
        }
        set_if_none(
            &mut net.as_org,
            self.autonomous_system_organization.or(self.as_name),
        );
        set_if_none(&mut net.country, self.country_iso.or(self.country_code));
        set_if_none(&mut net.city, self.city);
        for f in self.flags.names() {
            net.add_flag(f);
        }
    }
}

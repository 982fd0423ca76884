//! History of networks: whether a principal was ever seen from an address's AS or country before,
//! judged by placing the prefixes its baseline knows with the same databases. "First time this
//! principal is seen from AS64500 (Example Transit)" is a strong signal of its own: a stolen key
//! used from a hosting provider usually is a new AS for the principal, even in a known country.
use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::{EnrichError, Enricher, Network};

/// The ASes and countries of a principal's known prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNetworks {
    pub asns: BTreeSet<u32>,
    pub countries: BTreeSet<String>,
    /// Known prefixes the databases placed (an AS or a country).
    pub placed: usize,
}

/// `seen` / `first` for the AS and the country of one address; `None` where the address's own
/// network is unknown or no known prefix could be placed (nothing to compare with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NetworkHistory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<&'static str>,
}

impl NetworkHistory {
    pub fn is_empty(&self) -> bool {
        self.asn.is_none() && self.country.is_none()
    }
}

impl KnownNetworks {
    /// Place every known prefix (its first address stands for it: a /24 or /64 is one network).
    pub fn of_prefixes(
        enricher: &Enricher,
        prefixes: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Self, EnrichError> {
        let mut k = Self::default();
        for p in prefixes {
            let n = enricher.lookup(p, Network::default())?;
            if n.asn.is_some() || n.country.is_some() {
                k.placed += 1;
            }
            k.asns.extend(n.asn);
            k.countries.extend(n.country);
        }
        Ok(k)
    }

    pub fn judge(&self, net: &Network) -> NetworkHistory {
        let seen = |known: bool| if known { "seen" } else { "first" };
        NetworkHistory {
            asn: net
                .asn
                .filter(|_| !self.asns.is_empty())
                .map(|a| seen(self.asns.contains(&a))),
            country: net
                .country
                .as_ref()
                .filter(|_| !self.countries.is_empty())
                .map(|c| seen(self.countries.contains(c))),
        }
    }
}

/// The clause for an explanation: `First time this principal is seen from AS64500 (Example
/// Transit) and from NL.`; `None` when neither is new.
pub fn first_time_sentence(net: &Network, h: &NetworkHistory) -> Option<String> {
    let mut parts = Vec::new();
    if h.asn == Some("first") {
        let org = net
            .as_org
            .as_deref()
            .map(|o| format!(" ({o})"))
            .unwrap_or_default();
        parts.push(format!("AS{}{org}", net.asn.unwrap_or_default()));
    }
    if h.country == Some("first") {
        parts.push(net.country.clone().unwrap_or_default());
    }
    (!parts.is_empty()).then(|| {
        format!(
            "First time this principal is seen from {}.",
            parts.join(" and from ")
        )
    })
}

/// The network history of an address for one principal, the one way every front end judges it
/// (`ipsight score`, ipcheck's alerts, fuse's rows): the address's network against the networks of
/// the prefixes the principal's baseline knows, placed with the same databases, and the clause
/// for the explanation. `None` when there is nothing to compare (no known prefix placed, or the
/// address's own AS and country unknown).
pub fn network_history(
    enricher: &Enricher,
    net: &Network,
    known_prefixes: impl IntoIterator<Item = IpAddr>,
) -> Result<Option<(NetworkHistory, Option<String>)>, EnrichError> {
    let known = KnownNetworks::of_prefixes(enricher, known_prefixes)?;
    let h = known.judge(net);
    Ok((!h.is_empty()).then(|| (h, first_time_sentence(net, &h))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_seen() {
        let k = KnownNetworks {
            asns: [64500].into(),
            countries: ["FR".to_owned()].into(),
            placed: 1,
        };
        let net = Network {
            asn: Some(64511),
            as_org: Some("Example Hosting".into()),
            country: Some("FR".into()),
            ..Network::default()
        };
        let h = k.judge(&net);
        assert_eq!(h.asn, Some("first"));
        assert_eq!(h.country, Some("seen"));
        assert_eq!(
            first_time_sentence(&net, &h).unwrap(),
            "First time this principal is seen from AS64511 (Example Hosting)."
        );
        let net = Network {
            asn: Some(64500),
            country: Some("DE".into()),
            ..Network::default()
        };
        let h = k.judge(&net);
        assert_eq!(
            first_time_sentence(&net, &h).unwrap(),
            "First time this principal is seen from DE."
        );
        // Nothing known to compare with: no claim either way.
        assert!(KnownNetworks::default().judge(&net).is_empty());
    }
}

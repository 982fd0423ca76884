//! The behaviour model: accounts, identities, the people and machines behind them, and where they
//! connect from on each day.
//!
//! # World model
//!
//! * **Accounts** have a 12-digit id, a Root identity, three IAM Identity Center (SSO) permission-set
//!   roles (`AWSReservedSSO_<Name>_<hex>`), a `federation-broker` IAM user and service-linked roles.
//! * **Identities** are what CloudTrail names in `userIdentity`: IAMUser (`AIDA` + 17), AssumedRole
//!   (`AROA` + 17, `:session` appended per session), FederatedUser (`<account>:<name>`), Root (the
//!   account id). The normalised **entity** of an identity (see ARCHITECTURE.md) is its principal id
//!   without any session suffix.
//! * **Actors** are who acts through identities:
//!   * *humans* use their own IAM user, an SSO role with their e-mail as session name (so several
//!     people share one role entity), both, or a federated user. Each lives in a home /24 of a
//!     consumer ISP in their country and most belong to an office whose /24 (a few NAT addresses) is
//!     shared by colleagues. On weekdays they work from the office or from home (evenings from home),
//!     rarely on weekends; some travel for a few days to another country (a hotel /24 there); a
//!     quarter have IPv6 at home and sometimes reach AWS over it. One person per account also signs
//!     in as Root now and then. Console sessions use browsers, the rest CLIs and SDKs.
//! * **IPv6** follows how addresses are handed out: every ISP announces a /32
//!   ([`geo::isp_v6_32`]); a home gets a delegated /56 from its ISP's /32 that rarely changes (a
//!   quarter of homes are renumbered every one to four weeks, into another /56 of the same /32);
//!   each device uses a temporary (privacy) interface id that rotates daily inside the home /64. With
//!   [`SynthConfig::dual_stack`], offices also have a /48 from their ISP (each person's desk on one
//!   /64 of it) and some hotels an IPv6 /64. [`World::tuple_of`] sets IPv6 aside as `prepare
//!   cloudtrail` does by default; [`World::tuple_of_dual`] keeps it as `--ipv6` does.
//!   * *automation* (CI, ETL, agents) assumes its own role with sessions named after EC2 instances
//!     (`i-0…`) or `botocore-session-<n>`, around the clock, from one to three fixed EC2 addresses.
//!   * *AWS services* act with no principal id (`AWSService`, `invokedBy`) or through service-linked
//!     roles from `*.amazonaws.com` hosts or `AWS Internal`.
//! * A small fraction of calls are made by AWS on a principal's behalf (`AWS Internal`), and a few
//!   records lack `sourceIPAddress` or `userAgent` altogether: both pitfalls real trails have.
//!
//! Everything is a pure function of the [`SynthConfig`]: the events of actor *a* on day *d* come
//! from a generator seeded with `(seed, a, d)`, so any day range can be regenerated independently,
//! and [`World::normal_pairs`] always agrees with what the CloudTrail writer puts in the bucket.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::catalog::{self, Api};
use crate::geo::{self, COUNTRIES};
use crate::rng::{Prng, HEX, UPPER_ALNUM};
use crate::time;

/// Stream tags: every independent random decision has its own sub-stream.
const TAG_BUILD: u64 = 1;
const TAG_DAY: u64 = 2;
const TAG_HOME_HOST: u64 = 3;
const TAG_TRIP_HOST: u64 = 4;
const TAG_SERVICE: u64 = 5;
const TAG_ANOMALY: u64 = 6;
pub(crate) const TAG_KEY: u64 = 7;
// IPv6 decisions draw from their own streams, so that adding IPv6 behaviour never moves an IPv4
// address of an existing world (same seed, same IPv4 tuples).
const TAG_V6_BUILD: u64 = 8;
const TAG_V6_DAY: u64 = 9;
const TAG_V6_IID: u64 = 10;
const TAG_V6_RENUMBER: u64 = 11;

/// What to generate. `Default` is a small two-account company over two weeks.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Everything derives from this.
    pub seed: u64,
    /// Number of AWS accounts (≥ 1).
    pub accounts: u32,
    /// Number of people.
    pub users: u32,
    /// Number of automation roles (CI, ETL, agents), each with its own role.
    pub automation: u32,
    /// Number of days, starting at `start`.
    pub days: u32,
    /// Start of day 0, epoch seconds (UTC; should be a midnight).
    pub start: i64,
    /// Mean API calls per person per working day (automation makes twice as many, every day).
    pub events_per_user_day: u32,
    /// Regions the trail covers; the first is the fallback for people whose country's usual
    /// region is not listed, and global services log in `us-east-1` if listed, else the first.
    pub regions: Vec<String>,
    /// Fraction of people who travel at all.
    pub travellers: f64,
    /// Expected trips per traveller per 30 days.
    pub trips_per_month: f64,
    /// Fraction of people with IPv6 at home.
    pub ipv6_users: f64,
    /// Chance that a call from an IPv6-capable home goes over IPv6.
    pub ipv6_home_share: f64,
    /// Fraction of IPv6 homes whose ISP renumbers the delegated /56 every one to four weeks.
    pub ipv6_renumbering: f64,
    /// Fraction of offices with IPv6 (a /48 from their ISP).
    pub ipv6_offices: f64,
    /// Chance that a call from an IPv6 office goes over IPv6.
    pub ipv6_office_share: f64,
    /// Fraction of trips whose hotel network has IPv6 (a /64); half the calls there use it.
    pub ipv6_trips: f64,
    /// Fraction of principal calls logged with `sourceIPAddress: "AWS Internal"`.
    pub aws_internal_rate: f64,
    /// Fraction of records without `sourceIPAddress`.
    pub missing_ip_rate: f64,
    /// Fraction of records without `userAgent`.
    pub missing_user_agent_rate: f64,
    /// Mean calls per account per day by AWS services (no tuple from any of them).
    pub service_events_per_account_day: u32,
}

/// 2026-01-05T00:00:00Z, a Monday.
pub const DEFAULT_START: i64 = 1_767_571_200;

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            accounts: 2,
            users: 40,
            automation: 6,
            days: 14,
            start: DEFAULT_START,
            events_per_user_day: 30,
            regions: vec!["us-east-1".into(), "eu-west-1".into(), "us-west-2".into()],
            travellers: 0.4,
            trips_per_month: 1.0,
            ipv6_users: 0.25,
            ipv6_home_share: 0.35,
            ipv6_renumbering: 0.25,
            ipv6_offices: 0.0,
            ipv6_office_share: 0.6,
            ipv6_trips: 0.0,
            aws_internal_rate: 0.02,
            missing_ip_rate: 0.002,
            missing_user_agent_rate: 0.01,
            service_events_per_account_day: 40,
        }
    }
}

impl SynthConfig {
    /// A config with `seed`, `users` people (automation scaled as users/8 + 1) and `days` days.
    pub fn new(seed: u64, users: u32, days: u32) -> Self {
        SynthConfig {
            seed,
            users,
            days,
            automation: users / 8 + 1,
            ..Default::default()
        }
    }

    /// [`SynthConfig::new`] for an organisation on dual-stack networks: most homes have IPv6 and
    /// prefer it, most offices have a /48, and some hotels IPv6. The IPv6 evaluation world.
    pub fn dual_stack(seed: u64, users: u32, days: u32) -> Self {
        SynthConfig {
            ipv6_users: 0.6,
            ipv6_home_share: 0.6,
            ipv6_offices: 0.7,
            ipv6_trips: 0.5,
            ..Self::new(seed, users, days)
        }
    }
}

/// A home's IPv6: the /56 its ISP delegates from its /32, which some ISPs renumber now and then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeV6 {
    /// The ISP's /32 (first two groups).
    pub isp32: [u16; 2],
    /// Bits 32–55 of the /56 delegated before any renumbering.
    pub customer: u32,
    /// Days between renumberings (0: never renumbered).
    pub renumber_days: u32,
    /// Offset of the renumbering schedule, in days.
    pub renumber_phase: u32,
    /// Devices calling AWS from home (each with its own temporary addresses); the third, if any,
    /// sits on the home's second /64.
    pub devices: u32,
}

/// An AWS account of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// 12-digit account id.
    pub id: String,
    /// Friendly name (`prod`, `dev`, …).
    pub name: String,
    /// Index of its Root identity in [`World::identities`].
    pub root: usize,
    /// Index of the IAM user that issues federation tokens (sessionIssuer of FederatedUsers).
    pub broker: usize,
    /// Indices of its SSO permission-set roles.
    pub sso_roles: Vec<usize>,
    /// `(identity index, host, session)` of its service-linked roles.
    pub service_roles: Vec<(usize, &'static str, &'static str)>,
}

/// CloudTrail's `userIdentity.type` of an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentityKind {
    /// An IAM user, principal id `AIDA…`.
    IamUser,
    /// A role session, principal id `AROA…:<session>`.
    AssumedRole,
    /// A `GetFederationToken` user, principal id `<account>:<name>`.
    FederatedUser,
    /// The account's root user, principal id = account id.
    Root,
}

impl IdentityKind {
    /// The `userIdentity.type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::IamUser => "IAMUser",
            IdentityKind::AssumedRole => "AssumedRole",
            IdentityKind::FederatedUser => "FederatedUser",
            IdentityKind::Root => "Root",
        }
    }
}

/// A principal as CloudTrail names it (without the per-session part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `userIdentity.type`.
    pub kind: IdentityKind,
    /// Index into [`World::accounts`].
    pub account: usize,
    /// Principal id without session: this is also the normalised entity.
    pub principal_id: String,
    /// User, role or federated user name (empty for Root).
    pub name: String,
    /// IAM ARN of the user, role (`arn:aws:iam::…:role/…`), federated user or root.
    pub arn: String,
    /// Long-term access key (`AKIA…`) for IAM users; empty otherwise.
    pub access_key_id: String,
}

/// How an actor names its sessions when it assumes a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStyle {
    /// Not a role: no session suffix.
    None,
    /// Always the same name (SSO: the person's e-mail).
    Fixed(String),
    /// EC2 instance-profile sessions: one of these instance ids.
    Instances(Vec<String>),
    /// SDK default sessions: `botocore-session-<epoch>`, new each run.
    Botocore,
}

/// One identity an actor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityUse {
    /// Index into [`World::identities`].
    pub identity: usize,
    /// Session naming when it is a role.
    pub session: SessionStyle,
}

/// Person or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// Works office hours from home/office/travel networks.
    Human,
    /// Runs around the clock from fixed EC2 addresses.
    Automation,
}

/// An office: colleagues share its /24 (NAT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    /// Index into [`geo::COUNTRIES`].
    pub country: usize,
    /// Index of the ISP in the country's table.
    pub isp: usize,
    /// The office /24.
    pub net: [u8; 3],
    /// Host octets of the NAT addresses.
    pub nat_hosts: Vec<u8>,
    /// The office's IPv6 /48 (first three groups), if it has IPv6.
    pub ipv6: Option<[u16; 3]>,
}

/// A trip: some days spent on a hotel network in another country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    /// First day (index from the world start).
    pub start_day: u32,
    /// Length in days.
    pub days: u32,
    /// Index into [`geo::COUNTRIES`].
    pub country: usize,
    /// Index of the ISP in that country's table.
    pub isp: usize,
    /// The hotel /24.
    pub net: [u8; 3],
    /// The hotel's IPv6 /64 (first four groups), if it has IPv6.
    pub ipv6: Option<[u16; 4]>,
}

/// Someone or something that makes API calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// A readable name (`alice.smith`, `ci-deploy`).
    pub name: String,
    /// Person or machine.
    pub kind: ActorKind,
    /// Index into [`World::accounts`].
    pub account: usize,
    /// Identities used, in order of preference.
    pub uses: Vec<IdentityUse>,
    /// Root identity this person also uses now and then.
    pub root: Option<usize>,
    /// Index into [`geo::COUNTRIES`].
    pub country: usize,
    /// Index of the home ISP in the country's table.
    pub home_isp: usize,
    /// Home /24 (people only).
    pub home: Option<[u8; 3]>,
    /// Office index (people only; remote workers have none).
    pub office: Option<usize>,
    /// Home IPv6, if any.
    pub ipv6: Option<HomeV6>,
    /// The /64 (fourth group) of the office /48 this person's desk is on.
    pub office_subnet: u16,
    /// Fixed addresses (automation only).
    pub fixed_ips: Vec<Ipv4Addr>,
    /// Trips (people only).
    pub trips: Vec<Trip>,
    /// Usual region (index into the config's regions).
    pub region: usize,
    /// Signs in to the console on some days.
    pub console: bool,
    /// The CLI/SDK user agent this actor uses.
    pub agent: &'static str,
}

/// Where a record says the call came from (`sourceIPAddress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A public IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address.
    V6(Ipv6Addr),
    /// `AWS Internal`.
    AwsInternal,
    /// A service host such as `config.amazonaws.com`.
    Host(&'static str),
    /// No `sourceIPAddress` field.
    Missing,
}

/// Who a record names in `userIdentity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A principal with an id (plus a session name for roles).
    Principal {
        /// Index into [`World::identities`].
        identity: usize,
        /// Session name of a role session.
        session: Option<String>,
    },
    /// `AWSService` with `invokedBy` and no principal id.
    Service(&'static str),
}

/// One API call, before it is rendered as a CloudTrail record.
#[derive(Debug, Clone)]
pub struct Event {
    /// Epoch seconds.
    pub time: i64,
    /// Index into [`World::accounts`].
    pub account: usize,
    /// Index into the config's regions.
    pub region: usize,
    /// The caller.
    pub who: Who,
    /// The call.
    pub api: &'static Api,
    /// `sourceIPAddress`.
    pub source: Source,
    /// `userAgent` (`None`: field absent).
    pub agent: Option<&'static str>,
    /// A console (browser) session: temporary `ASIA` keys, session context.
    pub console: bool,
    /// Seeds the record's ids (eventID, requestID).
    pub uid: u64,
    /// Index of the actor (or `usize::MAX` for services): a stable sort tie-breaker.
    pub actor: usize,
}

/// Why a record yields no `<entity, ip>` tuple (ARCHITECTURE.md rules, checked in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// No `userIdentity.principalId` (AWSService).
    NoPrincipal,
    /// No `sourceIPAddress`.
    MissingIp,
    /// `AWS Internal`.
    AwsInternal,
    /// `*.amazonaws.com`.
    ServiceHost,
    /// IPv6 (IP Insights is IPv4-only).
    Ipv6,
}

/// The generated world. Build with [`World::new`].
#[derive(Debug, Clone)]
pub struct World {
    /// The configuration it was built from.
    pub config: SynthConfig,
    /// The organization id (`o-` + 10 characters), for organization-trail keys.
    pub org_id: String,
    /// Accounts.
    pub accounts: Vec<Account>,
    /// All identities (including unused ones such as brokers and unused SSO roles).
    pub identities: Vec<Identity>,
    /// People and machines.
    pub actors: Vec<Actor>,
    /// Offices.
    pub offices: Vec<Office>,
    /// Normalised entity → /24s its actors ever use (IPv4 only).
    nets: BTreeMap<String, BTreeSet<[u8; 3]>>,
    /// Normalised entity → IPv6 prefixes its actors ever use, and their ISPs' /32s.
    nets_v6: BTreeMap<String, V6Nets>,
}

/// The IPv6 an entity's actors use within the configured days.
#[derive(Debug, Clone, Default)]
struct V6Nets {
    /// `(prefix, length)`: home /56s (every delegation), office /48s, hotel /64s.
    prefixes: BTreeSet<(u128, u8)>,
    /// The /32s of their home and office ISPs.
    isps: BTreeSet<[u16; 2]>,
}

impl V6Nets {
    fn contains(&self, ip: Ipv6Addr) -> bool {
        let a = u128::from(ip);
        self.prefixes
            .iter()
            .any(|&(p, len)| (a >> (128 - len as u32)) == (p >> (128 - len as u32)))
    }
}

fn groups_to_u128(g: &[u16]) -> u128 {
    g.iter()
        .enumerate()
        .fold(0u128, |acc, (i, &x)| acc | ((x as u128) << (112 - 16 * i)))
}

/// Which delegation a home has on `day` (0: the original one).
fn home_epoch(h: &HomeV6, day: u32) -> u32 {
    (day + h.renumber_phase)
        .checked_div(h.renumber_days)
        .unwrap_or(0)
}

/// A temporary (privacy) interface id: random, new every day per device and network (RFC 8981),
/// never the `::` or `::1`-style low ids a human would configure.
fn temporary_iid(seed: u64, a: usize, day: u32, device: u64, place: u64) -> u64 {
    Prng::derive(
        seed,
        TAG_V6_IID,
        a as u64,
        ((day as u64) << 16) | (device << 4) | place,
    )
    .next_u64()
        | (1 << 62)
}

/// The IPv6 parts of the world, drawn from their own stream after everything else (see
/// `TAG_V6_BUILD`): renumbering schedules and devices of IPv6 homes, office /48s and desks, hotel /64s.
fn add_ipv6(config: &SynthConfig, offices: &mut [Office], actors: &mut [Actor]) {
    let mut v = Prng::derive(config.seed, TAG_V6_BUILD, 0, 0);
    for o in offices.iter_mut() {
        let office_v6 = v.chance(config.ipv6_offices);
        let site = v.below(0x10000) as u16;
        if office_v6 {
            let c = &COUNTRIES[o.country];
            let [a, b] = geo::isp_v6_32(c, &c.isps[o.isp]);
            o.ipv6 = Some([a, b, site]);
        }
    }
    for actor in actors.iter_mut() {
        if let Some(h) = &mut actor.ipv6 {
            if v.chance(config.ipv6_renumbering) {
                h.renumber_days = v.range(7, 28) as u32;
                h.renumber_phase = v.below(h.renumber_days as u64) as u32;
            }
            h.devices = v.range(1, 3) as u32;
        }
        // Desks sit on a handful of office VLANs.
        actor.office_subnet = v.range(1, 4) as u16;
        for t in &mut actor.trips {
            let hotel_v6 = v.chance(config.ipv6_trips);
            let (g3, g4) = (v.below(0x10000) as u16, v.below(0x100) as u16);
            if hotel_v6 {
                let c = &COUNTRIES[t.country];
                let [a, b] = geo::isp_v6_32(c, &c.isps[t.isp]);
                t.ipv6 = Some([a, b, g3, g4 << 8]);
            }
        }
    }
}

fn aws_id(r: &mut Prng, prefix: &str, total: usize) -> String {
    let mut s = String::with_capacity(total);
    s.push_str(prefix);
    r.push_chars(&mut s, UPPER_ALNUM, total - prefix.len());
    s
}

fn public_net_in(r: &mut Prng, net16: [u8; 2], avoid: &BTreeSet<[u8; 3]>) -> [u8; 3] {
    loop {
        let n = [net16[0], net16[1], r.below(256) as u8];
        if !avoid.contains(&n) {
            return n;
        }
    }
}

impl World {
    /// Build the world (accounts, identities, actors, offices, trips) from a config.
    ///
    /// Cost is proportional to users + automation; events are generated lazily per day.
    pub fn new(config: SynthConfig) -> World {
        assert!(config.accounts >= 1, "at least one account");
        assert!(!config.regions.is_empty(), "at least one region");
        let mut r = Prng::derive(config.seed, TAG_BUILD, 0, 0);
        let mut org_id = String::from("o-");
        r.push_chars(&mut org_id, b"abcdefghijklmnopqrstuvwxyz0123456789", 10);

        let mut identities = Vec::new();
        let mut accounts = Vec::new();
        let mut used_ids = BTreeSet::new();
        for a in 0..config.accounts as usize {
            let id = loop {
                let id = format!("{}{:011}", 1 + r.below(9), r.below(100_000_000_000));
                if used_ids.insert(id.clone()) {
                    break id;
                }
            };
            let name = format!(
                "{}{}",
                catalog::ACCOUNT_NAMES[a % catalog::ACCOUNT_NAMES.len()],
                if a >= catalog::ACCOUNT_NAMES.len() {
                    format!("-{}", a)
                } else {
                    String::new()
                }
            );
            let root = identities.len();
            identities.push(Identity {
                kind: IdentityKind::Root,
                account: a,
                principal_id: id.clone(),
                name: String::new(),
                arn: format!("arn:aws:iam::{id}:root"),
                access_key_id: String::new(),
            });
            let broker = identities.len();
            identities.push(Identity {
                kind: IdentityKind::IamUser,
                account: a,
                principal_id: aws_id(&mut r, "AIDA", 21),
                name: "federation-broker".into(),
                arn: format!("arn:aws:iam::{id}:user/federation-broker"),
                access_key_id: aws_id(&mut r, "AKIA", 20),
            });
            let mut sso_roles = Vec::new();
            for ps in ["AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess"] {
                let role = format!("AWSReservedSSO_{}_{}", ps, r.hex(16));
                sso_roles.push(identities.len());
                identities.push(Identity {
                    kind: IdentityKind::AssumedRole,
                    account: a,
                    principal_id: aws_id(&mut r, "AROA", 21),
                    arn: format!("arn:aws:iam::{id}:role/aws-reserved/sso.amazonaws.com/{role}"),
                    name: role,
                    access_key_id: String::new(),
                });
            }
            let mut service_roles = Vec::new();
            for &(host, role, session) in catalog::SERVICES {
                service_roles.push((identities.len(), host, session));
                identities.push(Identity {
                    kind: IdentityKind::AssumedRole,
                    account: a,
                    principal_id: aws_id(&mut r, "AROA", 21),
                    name: role.into(),
                    arn: format!("arn:aws:iam::{id}:role/aws-service-role/{host}/{role}"),
                    access_key_id: String::new(),
                });
            }
            accounts.push(Account {
                id,
                name,
                root,
                broker,
                sso_roles,
                service_roles,
            });
        }

        let region_of = |country: usize| {
            config
                .regions
                .iter()
                .position(|x| x == COUNTRIES[country].region)
                .unwrap_or(0)
        };

        // Offices: the first in the US, the rest anywhere; one per ~15 people.
        let mut offices: Vec<Office> = Vec::new();
        let mut taken: BTreeSet<[u8; 3]> = BTreeSet::new();
        for o in 0..(config.users as usize).div_ceil(15).max(1) {
            let country = if o == 0 {
                0
            } else {
                r.below(COUNTRIES.len() as u64) as usize
            };
            let isp = r.below(COUNTRIES[country].isps.len() as u64) as usize;
            let net = public_net_in(&mut r, COUNTRIES[country].isps[isp].net16, &taken);
            taken.insert(net);
            let nat_hosts = (0..r.range(1, 4)).map(|_| r.range(1, 254) as u8).collect();
            offices.push(Office {
                country,
                isp,
                net,
                nat_hosts,
                ipv6: None,
            });
        }

        let mut actors = Vec::new();
        let mut names = BTreeSet::new();
        let mut root_taken = vec![false; accounts.len()];
        for u in 0..config.users as usize {
            let name = loop {
                let n = format!(
                    "{}.{}",
                    r.pick(catalog::FIRST_NAMES),
                    r.pick(catalog::LAST_NAMES)
                );
                let n = if names.contains(&n) {
                    format!("{n}{}", u)
                } else {
                    n
                };
                if names.insert(n.clone()) {
                    break n;
                }
            };
            let account = if config.accounts == 1 || r.chance(0.5) {
                0
            } else {
                r.below(config.accounts as u64) as usize
            };
            let office = if r.chance(0.85) {
                Some(r.below(offices.len() as u64) as usize)
            } else {
                None
            };
            let country = match office {
                Some(o) if r.chance(0.9) => offices[o].country,
                _ => r.below(COUNTRIES.len() as u64) as usize,
            };
            let home_isp = r.below(COUNTRIES[country].isps.len() as u64) as usize;
            let home = public_net_in(&mut r, COUNTRIES[country].isps[home_isp].net16, &taken);
            taken.insert(home);
            // Same draws as before IPv6 was modelled (the IPv4 of every world stays put); the
            // schedule and devices are filled in from their own stream below.
            let ipv6 = r.chance(config.ipv6_users).then(|| {
                let (a, b, _) = (r.below(0x10000), r.below(0x10000), r.below(0x10000));
                HomeV6 {
                    isp32: geo::isp_v6_32(&COUNTRIES[country], &COUNTRIES[country].isps[home_isp]),
                    customer: ((a << 8) | (b >> 8)) as u32,
                    renumber_days: 0,
                    renumber_phase: 0,
                    devices: 1,
                }
            });
            let mut trips = Vec::new();
            if r.chance(config.travellers) {
                let expected = config.trips_per_month * config.days as f64 / 30.0;
                let n = expected.floor() as u32 + u32::from(r.chance(expected.fract()));
                for _ in 0..n {
                    let dest = loop {
                        let c = r.below(COUNTRIES.len() as u64) as usize;
                        if c != country {
                            break c;
                        }
                    };
                    let isp = r.below(COUNTRIES[dest].isps.len() as u64) as usize;
                    let net = public_net_in(&mut r, COUNTRIES[dest].isps[isp].net16, &taken);
                    trips.push(Trip {
                        start_day: r.below(config.days.max(1) as u64) as u32,
                        days: r.range(2, 5) as u32,
                        country: dest,
                        isp,
                        net,
                        ipv6: None,
                    });
                }
            }
            // Identities: own IAM user, SSO role (shared), both, or a federated user.
            let acct_id = accounts[account].id.clone();
            // The first three people cover the three styles (IAM user, SSO, federated) so that
            // even tiny worlds exercise every normalisation rule.
            let roll = match (u, r.unit()) {
                (0, _) => 0.0,
                (1, _) => 0.7,
                (2, _) => 0.97,
                (_, x) => x,
            };
            let mut uses = Vec::new();
            let email = format!("{name}@example.com");
            if roll < 0.55 || (0.90..0.95).contains(&roll) {
                let idx = identities.len();
                identities.push(Identity {
                    kind: IdentityKind::IamUser,
                    account,
                    principal_id: aws_id(&mut r, "AIDA", 21),
                    name: name.clone(),
                    arn: format!("arn:aws:iam::{acct_id}:user/{name}"),
                    access_key_id: aws_id(&mut r, "AKIA", 20),
                });
                uses.push(IdentityUse {
                    identity: idx,
                    session: SessionStyle::None,
                });
            }
            if (0.45..0.95).contains(&roll) {
                let role = *r.pick(&accounts[account].sso_roles);
                uses.push(IdentityUse {
                    identity: role,
                    session: SessionStyle::Fixed(email.clone()),
                });
            }
            if roll >= 0.95 {
                let idx = identities.len();
                identities.push(Identity {
                    kind: IdentityKind::FederatedUser,
                    account,
                    principal_id: format!("{acct_id}:{name}"),
                    name: name.clone(),
                    arn: format!("arn:aws:sts::{acct_id}:federated-user/{name}"),
                    access_key_id: String::new(),
                });
                uses.push(IdentityUse {
                    identity: idx,
                    session: SessionStyle::None,
                });
            }
            let root = (!root_taken[account]).then_some(accounts[account].root);
            root_taken[account] = true;
            actors.push(Actor {
                name,
                kind: ActorKind::Human,
                account,
                uses,
                root,
                country,
                home_isp,
                home: Some(home),
                office,
                ipv6,
                office_subnet: 0,
                fixed_ips: Vec::new(),
                trips,
                region: region_of(country),
                console: r.chance(0.6),
                agent: catalog::CLI_AGENTS[r.below(catalog::CLI_AGENTS.len() as u64) as usize],
            });
        }

        for m in 0..config.automation as usize {
            let account = m % config.accounts as usize;
            let acct_id = accounts[account].id.clone();
            let base = catalog::AUTOMATION_ROLES[m % catalog::AUTOMATION_ROLES.len()];
            let role = if m >= catalog::AUTOMATION_ROLES.len() {
                format!("{base}-{m}")
            } else {
                base.to_owned()
            };
            let region = r.below(config.regions.len() as u64) as usize;
            let ranges = geo::ec2_ranges(&config.regions[region]);
            let fixed_ips: Vec<Ipv4Addr> = (0..r.range(1, 3))
                .map(|_| {
                    let n = r.pick(ranges);
                    Ipv4Addr::new(n[0], n[1], r.below(256) as u8, r.range(1, 254) as u8)
                })
                .collect();
            let session = if r.chance(0.6) {
                SessionStyle::Instances(
                    (0..r.range(1, 4))
                        .map(|_| format!("i-0{}", r.hex(16)))
                        .collect(),
                )
            } else {
                SessionStyle::Botocore
            };
            let idx = identities.len();
            identities.push(Identity {
                kind: IdentityKind::AssumedRole,
                account,
                principal_id: aws_id(&mut r, "AROA", 21),
                arn: format!("arn:aws:iam::{acct_id}:role/{role}"),
                name: role.clone(),
                access_key_id: String::new(),
            });
            actors.push(Actor {
                name: role,
                kind: ActorKind::Automation,
                account,
                uses: vec![IdentityUse {
                    identity: idx,
                    session,
                }],
                root: None,
                country: 0,
                home_isp: 0,
                home: None,
                office: None,
                ipv6: None,
                office_subnet: 0,
                fixed_ips,
                trips: Vec::new(),
                region,
                console: false,
                agent: catalog::AUTOMATION_AGENTS
                    [r.below(catalog::AUTOMATION_AGENTS.len() as u64) as usize],
            });
        }

        add_ipv6(&config, &mut offices, &mut actors);
        let mut world = World {
            config,
            org_id,
            accounts,
            identities,
            actors,
            offices,
            nets: BTreeMap::new(),
            nets_v6: BTreeMap::new(),
        };
        world.nets = world.compute_nets();
        world.nets_v6 = world.compute_nets_v6();
        world
    }

    fn compute_nets_v6(&self) -> BTreeMap<String, V6Nets> {
        let mut nets: BTreeMap<String, V6Nets> = BTreeMap::new();
        for (a, actor) in self.actors.iter().enumerate() {
            let mut mine = V6Nets::default();
            if let Some(h) = &actor.ipv6 {
                mine.isps.insert(h.isp32);
                let epochs = (0..self.config.days.max(1))
                    .map(|d| home_epoch(h, d))
                    .collect::<BTreeSet<_>>();
                for e in epochs {
                    let p56 = (self.home_prefix64(a, h, e, 0) >> 8) << 8;
                    mine.prefixes.insert(((p56 as u128) << 64, 56));
                }
            }
            if let Some(o) = actor.office.map(|o| &self.offices[o]) {
                if let Some(p) = o.ipv6 {
                    mine.isps.insert([p[0], p[1]]);
                    mine.prefixes.insert((groups_to_u128(&p), 48));
                }
            }
            for t in &actor.trips {
                if let Some(p) = t.ipv6 {
                    mine.prefixes.insert((groups_to_u128(&p), 64));
                }
            }
            if mine.prefixes.is_empty() {
                continue;
            }
            for u in actor.uses.iter().map(|u| u.identity).chain(actor.root) {
                let e = nets
                    .entry(self.identities[u].principal_id.clone())
                    .or_default();
                e.prefixes.extend(mine.prefixes.iter().copied());
                e.isps.extend(mine.isps.iter().copied());
            }
        }
        nets
    }

    /// The home /64 (top 64 bits) of actor `a` in renumbering epoch `epoch`, on `subnet`.
    fn home_prefix64(&self, a: usize, h: &HomeV6, epoch: u32, subnet: u8) -> u64 {
        let customer = if epoch == 0 {
            h.customer
        } else {
            Prng::derive(self.config.seed, TAG_V6_RENUMBER, a as u64, epoch as u64).below(1 << 24)
                as u32
        };
        ((h.isp32[0] as u64) << 48)
            | ((h.isp32[1] as u64) << 32)
            | ((customer as u64) << 8)
            | subnet as u64
    }

    fn compute_nets(&self) -> BTreeMap<String, BTreeSet<[u8; 3]>> {
        let mut nets: BTreeMap<String, BTreeSet<[u8; 3]>> = BTreeMap::new();
        for a in &self.actors {
            let mut mine: Vec<[u8; 3]> = a.fixed_ips.iter().map(|ip| geo::net24(*ip)).collect();
            mine.extend(a.home);
            mine.extend(a.office.map(|o| self.offices[o].net));
            mine.extend(a.trips.iter().map(|t| t.net));
            for u in a.uses.iter().map(|u| u.identity).chain(a.root) {
                nets.entry(self.identities[u].principal_id.clone())
                    .or_default()
                    .extend(mine.iter().copied());
            }
        }
        nets
    }

    /// The normalised entities that actors use (each may appear in tuples), in a stable order:
    /// IAM users, SSO and automation roles (without session), federated users, roots in use.
    pub fn entities(&self) -> Vec<String> {
        self.nets.keys().cloned().collect()
    }

    /// The /24s (first three octets) an entity's actors ever connect from over IPv4; empty for
    /// an unknown entity.
    pub fn entity_networks(&self, entity: &str) -> Vec<[u8; 3]> {
        self.nets
            .get(entity)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether `ip` is in one of the /24s the entity ever uses.
    pub fn is_usual(&self, entity: &str, ip: Ipv4Addr) -> bool {
        self.nets
            .get(entity)
            .is_some_and(|s| s.contains(&geo::net24(ip)))
    }

    /// The region name of a region index.
    pub fn region_name(&self, region: usize) -> &str {
        &self.config.regions[region]
    }

    /// Epoch seconds of the start of `day`.
    pub fn day_start(&self, day: u32) -> i64 {
        self.config.start + day as i64 * 86_400
    }

    fn global_region(&self) -> usize {
        self.config
            .regions
            .iter()
            .position(|r| r == "us-east-1")
            .unwrap_or(0)
    }

    /// All calls on `day` by people, automation and AWS services across accounts, sorted by
    /// (account, region, time, actor). Days beyond `config.days` are valid (trips only happen
    /// within the configured days); the benchmark writers rely on that.
    pub fn day_events(&self, day: u32) -> Vec<Event> {
        let mut out = Vec::new();
        for a in 0..self.actors.len() {
            self.actor_day_events(a, day, &mut out);
        }
        for acct in 0..self.accounts.len() {
            self.service_day_events(acct, day, &mut out);
        }
        out.sort_by_key(|e| (e.account, e.region, e.time, e.actor));
        out
    }

    /// The calls actor `a` makes on `day`, appended to `out` in time order.
    pub fn actor_day_events(&self, a: usize, day: u32, out: &mut Vec<Event>) {
        let actor = &self.actors[a];
        let cfg = &self.config;
        let mut r = Prng::derive(cfg.seed, TAG_DAY, a as u64, day as u64);
        let day_start = self.day_start(day);
        let first = out.len();
        match actor.kind {
            ActorKind::Human => self.human_day(actor, a, day, day_start, &mut r, out),
            ActorKind::Automation => {
                let n = cfg.events_per_user_day as u64
                    + r.below(cfg.events_per_user_day as u64 * 2 + 1);
                let u = &actor.uses[0];
                // A couple of sessions per day for SDK-default sessions.
                let runs: Vec<String> = (0..r.range(1, 3))
                    .map(|_| format!("botocore-session-{}", day_start + r.below(86_400) as i64))
                    .collect();
                for _ in 0..n {
                    let session = match &u.session {
                        SessionStyle::Instances(ids) => Some(r.pick(ids).clone()),
                        SessionStyle::Botocore => Some(r.pick(&runs).clone()),
                        SessionStyle::Fixed(s) => Some(s.clone()),
                        SessionStyle::None => None,
                    };
                    let ip = *r.pick(&actor.fixed_ips);
                    let api = r.pick(catalog::AUTOMATION_APIS);
                    let source = self.decorate(&mut r, Source::V4(ip), cfg.aws_internal_rate / 4.0);
                    let region = if api.global {
                        self.global_region()
                    } else {
                        actor.region
                    };
                    out.push(Event {
                        time: day_start + r.below(86_400) as i64,
                        account: actor.account,
                        region,
                        who: Who::Principal {
                            identity: u.identity,
                            session,
                        },
                        api,
                        source,
                        agent: self.agent(&mut r, actor.agent, source),
                        console: false,
                        uid: r.next_u64(),
                        actor: a,
                    });
                }
            }
        }
        out[first..].sort_by_key(|e| e.time);
    }

    /// Replace a network source by `AWS Internal` or nothing at the configured rates.
    fn decorate(&self, r: &mut Prng, s: Source, internal_rate: f64) -> Source {
        if r.chance(self.config.missing_ip_rate) {
            Source::Missing
        } else if r.chance(internal_rate) {
            Source::AwsInternal
        } else {
            s
        }
    }

    fn agent(&self, r: &mut Prng, agent: &'static str, source: Source) -> Option<&'static str> {
        if r.chance(self.config.missing_user_agent_rate) {
            None
        } else if source == Source::AwsInternal {
            Some("AWS Internal")
        } else {
            Some(agent)
        }
    }

    fn human_day(
        &self,
        actor: &Actor,
        a: usize,
        day: u32,
        day_start: i64,
        r: &mut Prng,
        out: &mut Vec<Event>,
    ) {
        let cfg = &self.config;
        let wd = time::weekday(day_start + 43_200);
        let weekend = wd == 0 || wd == 6;
        let trip = actor
            .trips
            .iter()
            .find(|t| day >= t.start_day && day < t.start_day + t.days);
        let active = if trip.is_some() {
            r.chance(0.7)
        } else if weekend {
            r.chance(0.15)
        } else {
            r.chance(0.92)
        };
        if !active {
            return;
        }
        let epud = cfg.events_per_user_day.max(1) as u64;
        let mut n = epud / 2 + r.below(epud + 1);
        if weekend {
            n = n / 4 + 1;
        }
        let tz = trip.map_or(COUNTRIES[actor.country].utc_offset, |t| {
            COUNTRIES[t.country].utc_offset
        }) as i64;
        let home_net = actor.home.expect("people have a home");
        let home_host =
            2 + Prng::derive(cfg.seed, TAG_HOME_HOST, a as u64, day as u64 / 45).below(250) as u8;
        let home_ip = Ipv4Addr::new(home_net[0], home_net[1], home_net[2], home_host);
        let trip_ip = trip.map(|t| {
            let h = Prng::derive(cfg.seed, TAG_TRIP_HOST, a as u64, day as u64).range(2, 253) as u8;
            Ipv4Addr::new(t.net[0], t.net[1], t.net[2], h)
        });
        let office = actor.office.map(|o| &self.offices[o]);
        let office_day = trip.is_none() && !weekend && office.is_some() && r.chance(0.65);
        let start_local = r.range(7, 10) as i64 * 3600;
        let span = r.range(8, 12) as i64 * 3600;
        let console_day = actor.console && r.chance(0.5);
        let browser = *r.pick(catalog::BROWSER_AGENTS);
        let mut logged_in = false;

        // IPv6 choices come from their own stream: `r` draws exactly what it drew before IPv6 was
        // modelled, so the IPv4 of a world does not depend on its IPv6 settings.
        let mut v6r = Prng::derive(cfg.seed, TAG_V6_DAY, a as u64, day as u64);
        let v6_addr = |prefix64: u64, device: u64, place: u64| {
            Ipv6Addr::from(
                ((prefix64 as u128) << 64) | temporary_iid(cfg.seed, a, day, device, place) as u128,
            )
        };
        let mut location = |r: &mut Prng, local: i64| -> (Source, bool) {
            if let Some(ip) = trip_ip {
                let hotel = trip.and_then(|t| t.ipv6);
                if let Some(p) = hotel.filter(|_| v6r.chance(0.5)) {
                    let p64 = (groups_to_u128(&p) >> 64) as u64;
                    return (Source::V6(v6_addr(p64, 0, 2)), false);
                }
                return (Source::V4(ip), false);
            }
            if office_day && local < 18 * 3600 {
                let o = office.expect("office day");
                // Drawn whatever the family, so that `r` stays in step.
                let h = *r.pick(&o.nat_hosts);
                if let Some(p) = o.ipv6.filter(|_| v6r.chance(cfg.ipv6_office_share)) {
                    let p64 = (groups_to_u128(&p) >> 64) as u64 | actor.office_subnet as u64;
                    return (Source::V6(v6_addr(p64, 0, 1)), false);
                }
                return (
                    Source::V4(Ipv4Addr::new(o.net[0], o.net[1], o.net[2], h)),
                    false,
                );
            }
            if let Some(h) = &actor.ipv6 {
                if r.chance(cfg.ipv6_home_share) {
                    let device = r.below(0x10000) % h.devices as u64;
                    for _ in 0..3 {
                        r.below(0x10000);
                    }
                    let subnet = u8::from(device == 2);
                    let p64 = self.home_prefix64(a, h, home_epoch(h, day), subnet);
                    return (Source::V6(v6_addr(p64, device, 0)), true);
                }
            }
            (Source::V4(home_ip), true)
        };

        let mut times: Vec<i64> = (0..n)
            .map(|_| start_local + r.below(span as u64) as i64)
            .collect();
        times.sort_unstable();
        for local in times {
            let time = day_start + (local - tz * 3600).rem_euclid(86_400);
            let (net_source, _) = location(r, local);
            let source = self.decorate(r, net_source, cfg.aws_internal_rate);
            let u = r.pick(&actor.uses);
            let ident = &self.identities[u.identity];
            let session = match &u.session {
                SessionStyle::Fixed(s) => Some(s.clone()),
                SessionStyle::None => None,
                SessionStyle::Instances(ids) => Some(r.pick(ids).clone()),
                SessionStyle::Botocore => Some(format!("botocore-session-{}", day_start + local)),
            };
            let console = console_day && r.chance(0.6);
            let api = if console && !logged_in && ident.kind == IdentityKind::IamUser {
                logged_in = true;
                &catalog::CONSOLE_LOGIN
            } else {
                r.pick(catalog::HUMAN_APIS)
            };
            let region = if api.global {
                self.global_region()
            } else {
                actor.region
            };
            let agent = self.agent(r, if console { browser } else { actor.agent }, source);
            out.push(Event {
                time,
                account: actor.account,
                region,
                who: Who::Principal {
                    identity: u.identity,
                    session,
                },
                api,
                source,
                agent,
                console,
                uid: r.next_u64(),
                actor: a,
            });
        }

        // Root: now and then, a short console visit from wherever the person is.
        if let Some(root) = actor.root {
            if r.chance(0.1) {
                let local = start_local + r.below(span as u64) as i64;
                let (net_source, _) = location(r, local);
                for k in 0..r.range(1, 3) {
                    let api = if k == 0 {
                        &catalog::CONSOLE_LOGIN
                    } else {
                        r.pick(catalog::HUMAN_APIS)
                    };
                    let region = if api.global {
                        self.global_region()
                    } else {
                        actor.region
                    };
                    out.push(Event {
                        time: day_start + (local + k as i64 * 97 - tz * 3600).rem_euclid(86_400),
                        account: actor.account,
                        region,
                        who: Who::Principal {
                            identity: root,
                            session: None,
                        },
                        api,
                        source: net_source,
                        agent: Some(browser),
                        console: true,
                        uid: r.next_u64(),
                        actor: a,
                    });
                }
            }
        }
    }

    /// Calls by AWS services in account `acct` on `day` (none yields a tuple).
    pub fn service_day_events(&self, acct: usize, day: u32, out: &mut Vec<Event>) {
        let cfg = &self.config;
        let mut r = Prng::derive(cfg.seed, TAG_SERVICE, acct as u64, day as u64);
        let mean = cfg.service_events_per_account_day as u64;
        let n = mean / 2 + r.below(mean + 1);
        let day_start = self.day_start(day);
        let account = &self.accounts[acct];
        for _ in 0..n {
            let roll = r.unit();
            let (who, source, agent) = if roll < 0.5 {
                let host = r.pick(catalog::SERVICES).0;
                (Who::Service(host), Source::Host(host), Some(host))
            } else {
                let &(identity, host, session) = r.pick(&account.service_roles);
                let who = Who::Principal {
                    identity,
                    session: Some(session.to_owned()),
                };
                if roll < 0.85 {
                    (who, Source::Host(host), Some(host))
                } else {
                    (who, Source::AwsInternal, Some("AWS Internal"))
                }
            };
            let api = r.pick(catalog::SERVICE_APIS);
            let region = if api.global {
                self.global_region()
            } else {
                r.below(cfg.regions.len() as u64) as usize
            };
            out.push(Event {
                time: day_start + r.below(86_400) as i64,
                account: acct,
                region,
                who,
                api,
                source,
                agent,
                console: false,
                uid: r.next_u64(),
                actor: usize::MAX,
            });
        }
    }

    /// The normalised entity of an event's caller (`None`: no principal id).
    pub fn entity_of(&self, e: &Event) -> Option<&str> {
        match &e.who {
            Who::Principal { identity, .. } => Some(&self.identities[*identity].principal_id),
            Who::Service(_) => None,
        }
    }

    /// The tuple a preparer derives from the event's record, or why there is none.
    pub fn tuple_of(&self, e: &Event) -> Result<(&str, Ipv4Addr), SkipReason> {
        let entity = self.entity_of(e).ok_or(SkipReason::NoPrincipal)?;
        match e.source {
            Source::Missing => Err(SkipReason::MissingIp),
            Source::AwsInternal => Err(SkipReason::AwsInternal),
            Source::Host(_) => Err(SkipReason::ServiceHost),
            Source::V6(_) => Err(SkipReason::Ipv6),
            Source::V4(ip) => Ok((entity, ip)),
        }
    }

    /// The tuple `prepare cloudtrail --ipv6` derives from the event's record (IPv6 kept), or why
    /// there is none.
    pub fn tuple_of_dual(&self, e: &Event) -> Result<(&str, IpAddr), SkipReason> {
        match e.source {
            Source::V6(ip) => Ok((self.entity_of(e).ok_or(SkipReason::NoPrincipal)?, ip.into())),
            _ => self.tuple_of(e).map(|(ent, ip)| (ent, ip.into())),
        }
    }

    /// [`World::normal_pairs_in_time_order`] with IPv6 kept, as `prepare cloudtrail --ipv6` writes.
    pub fn normal_pairs_dual_in_time_order(&self, days: Range<u32>) -> Vec<(String, IpAddr)> {
        let mut timed: Vec<(i64, usize, String, IpAddr)> = Vec::new();
        let mut evs = Vec::new();
        for d in days {
            for a in 0..self.actors.len() {
                evs.clear();
                self.actor_day_events(a, d, &mut evs);
                timed.extend(evs.iter().filter_map(|e| {
                    self.tuple_of_dual(e)
                        .ok()
                        .map(|(ent, ip)| (e.time, a, ent.to_owned(), ip))
                }));
            }
        }
        timed.sort_by_key(|t| (t.0, t.1));
        timed.into_iter().map(|(_, _, e, ip)| (e, ip)).collect()
    }

    /// The entities whose actors use IPv6 within the configured days, in a stable order.
    pub fn ipv6_entities(&self) -> Vec<String> {
        self.nets_v6.keys().cloned().collect()
    }

    /// Whether `ip` is in one of the IPv6 prefixes the entity uses: any home /56 it is delegated
    /// within the configured days, its office /48, a hotel /64 of its trips.
    pub fn is_usual_v6(&self, entity: &str, ip: Ipv6Addr) -> bool {
        self.nets_v6.get(entity).is_some_and(|n| n.contains(ip))
    }

    /// `n` IPv6-using entities paired with uniformly random public IPv6 addresses
    /// ([`geo::is_public_v6`]) outside every prefix they use. `seed` selects the sample.
    pub fn ipv6_random_pairs(&self, n: usize, seed: u64) -> Vec<(String, Ipv6Addr)> {
        let entities = self.ipv6_entities();
        if entities.is_empty() {
            return Vec::new();
        }
        let mut r = Prng::derive(self.config.seed, TAG_ANOMALY, seed, 2);
        (0..n)
            .map(|_| {
                let e = r.pick(&entities).clone();
                let ip = loop {
                    let hi = (r.next_u64() >> 3) | (1 << 61);
                    let ip = Ipv6Addr::from(((hi as u128) << 64) | r.next_u64() as u128);
                    if geo::is_public_v6(ip) && !self.is_usual_v6(&e, ip) {
                        break ip;
                    }
                };
                (e, ip)
            })
            .collect()
    }

    /// The hard case: `n` IPv6-using entities paired with an address of their own home or office
    /// ISP's /32 but another customer's prefix (random bits 32–63 outside every prefix they use,
    /// random interface id) — stolen keys used from a neighbour on the same ISP, which a
    /// /32-level history calls familiar. `seed` selects the sample.
    pub fn ipv6_same_isp_pairs(&self, n: usize, seed: u64) -> Vec<(String, Ipv6Addr)> {
        // Entities with a home or office ISP (not only hotels).
        let entities: Vec<&String> = self
            .nets_v6
            .iter()
            .filter(|(_, n)| !n.isps.is_empty())
            .map(|(e, _)| e)
            .collect();
        if entities.is_empty() {
            return Vec::new();
        }
        let mut r = Prng::derive(self.config.seed, TAG_ANOMALY, seed, 3);
        (0..n)
            .map(|_| {
                let e = (*r.pick(&entities)).clone();
                let isps: Vec<[u16; 2]> = self.nets_v6[&e].isps.iter().copied().collect();
                let ip = loop {
                    let [a, b] = *r.pick(&isps);
                    let hi = ((a as u64) << 48) | ((b as u64) << 32) | (r.next_u64() >> 32);
                    let ip = Ipv6Addr::from(((hi as u128) << 64) | r.next_u64() as u128);
                    if !self.is_usual_v6(&e, ip) {
                        break ip;
                    }
                };
                (e, ip)
            })
            .collect()
    }

    /// `n` IPv6-using entities paired with IPv6 addresses *other* entities use on `days`, outside
    /// every prefix the entity uses: IPv6's shuffled anomalies. `seed` selects the sample.
    pub fn ipv6_shuffled_pairs(
        &self,
        n: usize,
        days: Range<u32>,
        seed: u64,
    ) -> Vec<(String, Ipv6Addr)> {
        let entities = self.ipv6_entities();
        let mut pool: Vec<Ipv6Addr> = self
            .normal_pairs_dual_in_time_order(days)
            .into_iter()
            .filter_map(|(_, ip)| match ip {
                IpAddr::V6(v6) => Some(v6),
                IpAddr::V4(_) => None,
            })
            .collect();
        pool.sort_unstable();
        pool.dedup();
        if entities.is_empty() || pool.is_empty() {
            return Vec::new();
        }
        let mut r = Prng::derive(self.config.seed, TAG_ANOMALY, seed, 4);
        let mut out = Vec::with_capacity(n);
        let mut tries = 0usize;
        while out.len() < n && tries < n.saturating_mul(100).max(1000) {
            tries += 1;
            let e = r.pick(&entities);
            let ip = *r.pick(&pool);
            if !self.is_usual_v6(e, ip) {
                out.push((e.clone(), ip));
            }
        }
        out
    }

    /// The `(entity, ip)` tuples a CloudTrail preparer produces from the records of `days`: one
    /// per record with a principal id and an IPv4 source, entity normalised per ARCHITECTURE.md.
    /// Order is by day, then actor, then time — not the file order; compare as multisets.
    pub fn normal_pairs(&self, days: Range<u32>) -> impl Iterator<Item = (String, Ipv4Addr)> + '_ {
        days.flat_map(move |d| {
            (0..self.actors.len()).flat_map(move |a| {
                let mut evs = Vec::new();
                self.actor_day_events(a, d, &mut evs);
                evs.into_iter()
                    .filter_map(|e| self.tuple_of(&e).ok().map(|(ent, ip)| (ent.to_owned(), ip)))
                    .collect::<Vec<_>>()
            })
        })
    }

    /// What a pair file of the records of `days` holds: per distinct `(entity, ip)`, the number of
    /// records and the first and last record time (epoch seconds).
    pub fn expected_pair_history(
        &self,
        days: Range<u32>,
    ) -> BTreeMap<(String, Ipv4Addr), (u64, i64, i64)> {
        let mut out: BTreeMap<(String, Ipv4Addr), (u64, i64, i64)> = BTreeMap::new();
        let mut evs = Vec::new();
        for d in days {
            for a in 0..self.actors.len() {
                evs.clear();
                self.actor_day_events(a, d, &mut evs);
                for e in &evs {
                    if let Ok((ent, ip)) = self.tuple_of(e) {
                        let h = out
                            .entry((ent.to_owned(), ip))
                            .or_insert((0, i64::MAX, i64::MIN));
                        h.0 += 1;
                        h.1 = h.1.min(e.time);
                        h.2 = h.2.max(e.time);
                    }
                }
            }
        }
        out
    }

    /// [`World::normal_pairs`] collected and sorted: handy for exact comparisons in tests.
    pub fn expected_tuples(&self, days: Range<u32>) -> Vec<(String, Ipv4Addr)> {
        let mut v: Vec<_> = self.normal_pairs(days).collect();
        v.sort();
        v
    }

    /// [`World::normal_pairs`] in event-time order (ties by actor), as a preparer reading the trail
    /// in time order writes them: the order "held back the newest part" is defined on.
    pub fn normal_pairs_in_time_order(&self, days: Range<u32>) -> Vec<(String, Ipv4Addr)> {
        let mut timed: Vec<(i64, usize, String, Ipv4Addr)> = Vec::new();
        for d in days {
            for a in 0..self.actors.len() {
                let mut evs = Vec::new();
                self.actor_day_events(a, d, &mut evs);
                timed.extend(evs.iter().filter_map(|e| {
                    self.tuple_of(e)
                        .ok()
                        .map(|(ent, ip)| (e.time, a, ent.to_owned(), ip))
                }));
            }
        }
        timed.sort_by_key(|t| (t.0, t.1));
        timed.into_iter().map(|(_, _, e, ip)| (e, ip)).collect()
    }

    /// `n` known entities paired with addresses *other* entities use on `days`, outside every /24
    /// the entity itself uses — IP Insights' shuffled negatives as evaluation anomalies (a key used
    /// from a colleague's or another company's network, not from a random corner of the Internet).
    /// Empty when no such address exists; `seed` selects the sample.
    pub fn shuffled_pairs(&self, n: usize, days: Range<u32>, seed: u64) -> Vec<(String, Ipv4Addr)> {
        let entities = self.entities();
        let mut pool: Vec<Ipv4Addr> = self.normal_pairs(days).map(|(_, ip)| ip).collect();
        pool.sort_unstable();
        pool.dedup();
        if entities.is_empty() || pool.is_empty() {
            return Vec::new();
        }
        let mut r = Prng::derive(self.config.seed, TAG_ANOMALY, seed, 1);
        let mut out = Vec::with_capacity(n);
        let mut tries = 0usize;
        while out.len() < n && tries < n.saturating_mul(100).max(1000) {
            tries += 1;
            let e = r.pick(&entities);
            let ip = *r.pick(&pool);
            if !self.is_usual(e, ip) {
                out.push((e.clone(), ip));
            }
        }
        out
    }

    /// `n` known entities paired with uniformly random public IPv4 addresses outside every /24
    /// that entity ever uses — the evaluation negatives of the SageMaker IP Insights tutorial.
    /// Entities are drawn uniformly from [`World::entities`]; `seed` selects the sample.
    pub fn anomalous_pairs(&self, n: usize, seed: u64) -> Vec<(String, Ipv4Addr)> {
        let entities = self.entities();
        if entities.is_empty() {
            return Vec::new();
        }
        let mut r = Prng::derive(self.config.seed, TAG_ANOMALY, seed, 0);
        (0..n)
            .map(|_| {
                let e = r.pick(&entities).clone();
                let ip = loop {
                    let ip = Ipv4Addr::from(r.next_u64() as u32);
                    if geo::is_public_v4(ip) && !self.is_usual(&e, ip) {
                        break ip;
                    }
                };
                (e, ip)
            })
            .collect()
    }

    /// A temporary (`ASIA…`) access key id, stable per identity, session and day.
    pub(crate) fn session_key(&self, identity: usize, session: Option<&str>, day: i64) -> String {
        let h = session.map_or(0, |s| {
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            })
        });
        let mut r = Prng::derive(
            self.config.seed,
            TAG_KEY,
            identity as u64,
            crate::rng::mix(h, day as u64),
        );
        aws_id(&mut r, "ASIA", 20)
    }
}

/// Random lower-case hex of length `n` from a derived stream (used by writers for ids).
pub(crate) fn hex_id(r: &mut Prng, n: usize) -> String {
    let mut s = String::with_capacity(n);
    r.push_chars(&mut s, HEX, n);
    s
}

//! Wire shapes shared by every ipsight Lambda and the CLI, each with one read/write pair: CloudTrail
//! record streams, the entity and IP rules of the tuple contract, S3/SQS/SNS/EventBridge
//! notification bodies, findings, OCSF, tuple and pair files, labels' JSON lines, the tuning
//! schema. Policy (key rules, how labels and tuning apply, time) is `ipsight-core`.
//!
//! Nothing here does I/O beyond `std::io::Read`/`Write`, so the same code runs in a Lambda (fed by an
//! S3 stream) and in the CLI (fed by files).

pub mod asff;
pub mod batchops;
pub mod cloudtrail;
pub mod entity;
mod fastrec;
pub mod guardduty;
pub mod ip;
pub mod labels;
pub mod limit;
pub mod notify;
pub mod ocsf;
pub mod pairs;
pub mod tuning;
pub mod tuples;

pub use cloudtrail::{
    prepare_cloudtrail, prepare_cloudtrail_split, CloudTrailError, Ipv6Tuples, PrepareOptions,
    PrepareStats,
};
pub use entity::{entity_for, normalise_entity, EntityFields, EntityKind};
pub use ip::{classify_ip, IpClass};

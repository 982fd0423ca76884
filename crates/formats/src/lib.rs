//! Pure parsers shared by every ipsight Lambda and the CLI: CloudTrail record streams, the entity and
//! IP rules of the tuple contract, object-key filters, and S3/SQS/SNS/EventBridge notification bodies.
//!
//! Nothing here does I/O beyond `std::io::Read`/`Write`, so the same code runs in a Lambda (fed by an
//! S3 stream) and in the CLI (fed by files).

pub mod cloudtrail;
pub mod entity;
mod fastrec;
pub mod guardduty;
pub mod ip;
pub mod keys;
pub mod labels;
pub mod limit;
pub mod notify;
pub mod ocsf;
pub mod tuples;

pub use cloudtrail::{prepare_cloudtrail, CloudTrailError, PrepareOptions, PrepareStats};
pub use entity::{entity_for, normalise_entity, EntityFields, EntityKind};
pub use ip::{classify_ip, IpClass};

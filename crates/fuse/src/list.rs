//! Listing objects under a prefix. The port lives in `ipsight-aws` (ipcheck reads label prefixes
//! too); re-exported here so `fuse::ObjectLister` keeps working.
pub use ipsight_aws::ObjectLister;

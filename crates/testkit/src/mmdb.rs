//! Small MaxMind-format databases built by the tests themselves (no download): PyPI's
//! `mmdb-writer` writes them from a JSON description, and the real `maxminddb` reader opens them.
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};

/// Reads `{"database_type", "ip_version", "networks": [[cidr, record], ...]}` on stdin. Integers
/// in MaxMind's layouts are uint32 (`autonomous_system_number`), so they are written as such.
const WRITER: &str = r#"
import json, sys
from mmdb_writer import MMDBWriter, MmdbU32
from netaddr import IPSet
spec = json.load(sys.stdin)
def typed(v):
    if isinstance(v, bool): return v
    if isinstance(v, int): return MmdbU32(v)
    if isinstance(v, dict): return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list): return [typed(x) for x in v]
    return v
w = MMDBWriter(ip_version=spec["ip_version"], database_type=spec["database_type"],
               ipv4_compatible=spec["ip_version"] == 6)
for cidr, record in spec["networks"]:
    w.insert_network(IPSet([cidr]), typed(record))
w.to_db_file(spec["path"])
"#;

fn ensure_writer() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let have = || {
            Command::new("python3")
                .args(["-c", "import mmdb_writer, netaddr"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !have() {
            // Like moto_server: a PyPI package the tests install on a fresh machine.
            let _ = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "mmdb-writer", "netaddr"])
                .status();
        }
        assert!(
            have(),
            "python3 cannot import mmdb_writer/netaddr: `pip install mmdb-writer netaddr`"
        );
    });
}

/// Write a database of `database_type` (`GeoLite2-ASN`, `DBIP-Country-Lite`, `ipinfo lite.mmdb`…)
/// holding `networks` (CIDR → record, in MaxMind's JSON shape) to `path`. IPv6 databases
/// (`ip_version` 6) also answer IPv4 lookups, as MaxMind's do.
pub fn write_mmdb(path: &Path, database_type: &str, ip_version: u8, networks: &[(&str, Value)]) {
    ensure_writer();
    let spec = json!({
        "path": path,
        "database_type": database_type,
        "ip_version": ip_version,
        "networks": networks,
    });
    let mut child = Command::new("python3")
        .args(["-c", WRITER])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    serde_json::to_writer(child.stdin.take().unwrap(), &spec).unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "mmdb-writer failed for {}",
        path.display()
    );
}

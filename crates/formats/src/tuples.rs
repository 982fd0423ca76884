//! The tuple CSV contract: `entity,ip\n`, no header, UTF-8 — SageMaker IP Insights' `text/csv`.
//!
//! Principal ids never contain commas, but federated user names may (`[\w+=,.@-]`), so an entity
//! holding `,`, `"`, CR or LF is written RFC 4180-quoted; everything else is written bare.
use std::io::{self, Write};
use std::net::Ipv4Addr;

/// Write one `entity,ip` line.
pub fn write_tuple<W: Write>(w: &mut W, entity: &str, ip: Ipv4Addr) -> io::Result<()> {
    if entity
        .bytes()
        .any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r'))
    {
        w.write_all(b"\"")?;
        w.write_all(entity.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")?;
    } else {
        w.write_all(entity.as_bytes())?;
    }
    writeln!(w, ",{ip}")
}

/// Split one CSV line (without its newline) into `(entity, ip)` text, honouring RFC 4180 quotes on
/// the entity. Returns `None` when the line does not have exactly two fields.
pub fn split_tuple(line: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if let Some(rest) = line.strip_prefix('"') {
        // Quoted entity: find the closing quote that is not doubled.
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut ent = String::new();
        while i < bytes.len() {
            if bytes[i] == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    ent.push('"');
                    i += 2;
                    continue;
                }
                let after = &rest[i + 1..];
                let ip = after.strip_prefix(',')?;
                return (!ip.contains(',')).then_some((ent.into(), ip));
            }
            let ch = rest[i..].chars().next()?;
            ent.push(ch);
            i += ch.len_utf8();
        }
        None
    } else {
        let (e, ip) = line.split_once(',')?;
        (!ip.contains(',')).then_some((e.into(), ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write_tuple(&mut out, "AIDAX", Ipv4Addr::new(1, 2, 3, 4)).unwrap();
        write_tuple(&mut out, "1:a,\"b\"", Ipv4Addr::new(5, 6, 7, 8)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "AIDAX,1.2.3.4\n\"1:a,\"\"b\"\"\",5.6.7.8\n");
        let lines: Vec<_> = text.lines().map(|l| split_tuple(l).unwrap()).collect();
        assert_eq!(lines[0].0, "AIDAX");
        assert_eq!(lines[1].0, "1:a,\"b\"");
        assert_eq!(lines[1].1, "5.6.7.8");
        assert!(split_tuple("a,b,c").is_none());
        assert!(split_tuple("nocomma").is_none());
    }
}

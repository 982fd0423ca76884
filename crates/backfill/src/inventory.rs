//! Choosing the backfill's objects from an S3 Inventory report instead of listing the bucket: for
//! trails with so many objects that even a windowed listing is slow, the daily inventory already
//! holds every key.
//!
//! Reads `manifest.json` (`sourceBucket`, `destinationBucket`, `fileFormat`, `fileSchema`, `files[].key`)
//! and its gzipped CSV files. Only the CSV format is read (ORC and Parquet inventories are refused
//! by name). CSV keys are URL-encoded (form encoding, `+` is a space) and are decoded like S3 event
//! keys before the preparer's key rules see them.
use std::io::{BufRead, BufReader};

use ipsight_formats::notify::decode_notification_key;
use serde::Deserialize;

use crate::manifest::Selection;
use crate::BackfillError;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InventoryManifest {
    source_bucket: String,
    destination_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<InventoryFile>,
}

#[derive(Deserialize)]
struct InventoryFile {
    key: String,
}

async fn get_all(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, BackfillError> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| BackfillError::s3("reading inventory", bucket, key, e))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| BackfillError::s3("reading inventory", bucket, key, e))?;
    Ok(body.into_bytes().to_vec())
}

/// Split one inventory CSV line: every field is double-quoted, and URL encoding leaves no quote or
/// comma inside a key; unquoted fields are accepted too.
fn fields(line: &str) -> Vec<&str> {
    line.split(',')
        .map(|f| {
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or(f)
        })
        .collect()
}

/// Read the inventory report whose `manifest.json` is `s3://bucket/key` into `sel`, keeping keys
/// under `prefix`.
pub async fn read_inventory(
    client: &aws_sdk_s3::Client,
    manifest_bucket: &str,
    manifest_key: &str,
    prefix: &str,
    sel: &mut Selection,
) -> Result<(), BackfillError> {
    let object = format!("s3://{manifest_bucket}/{manifest_key}");
    let bad = |reason: String| BackfillError::Inventory {
        object: object.clone(),
        reason,
    };
    let raw = get_all(client, manifest_bucket, manifest_key).await?;
    let m: InventoryManifest = serde_json::from_slice(&raw)
        .map_err(|e| bad(format!("not an S3 Inventory manifest.json: {e}")))?;
    if !m.file_format.eq_ignore_ascii_case("CSV") {
        return Err(bad(format!(
            "fileFormat {:?}: only CSV inventories are read (configure a CSV inventory, or let \
             `ipsight backfill` list the bucket)",
            m.file_format
        )));
    }
    if m.source_bucket != sel.bucket() {
        return Err(bad(format!(
            "is an inventory of bucket {:?}, not of --bucket {:?}",
            m.source_bucket,
            sel.bucket()
        )));
    }
    let schema: Vec<String> = m
        .file_schema
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let col = |name: &str| schema.iter().position(|s| s == name);
    let (Some(c_bucket), Some(c_key)) = (col("Bucket"), col("Key")) else {
        return Err(bad(format!(
            "fileSchema {:?} lacks Bucket or Key",
            m.file_schema
        )));
    };
    let (c_size, c_latest, c_deleted) = (col("Size"), col("IsLatest"), col("IsDeleteMarker"));
    // The data files are in the destination bucket (given as an ARN).
    let dest = m
        .destination_bucket
        .rsplit(':')
        .next()
        .unwrap_or(&m.destination_bucket)
        .to_owned();
    for f in &m.files {
        let gz = get_all(client, &dest, &f.key).await?;
        let file = format!("s3://{dest}/{}", f.key);
        let reader = BufReader::new(flate2::read::MultiGzDecoder::new(&gz[..]));
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| BackfillError::Inventory {
                object: file.clone(),
                reason: format!("line {}: {e} (not a gzipped CSV?)", n + 1),
            })?;
            if line.is_empty() {
                continue;
            }
            let row = fields(&line);
            let (Some(b), Some(k)) = (row.get(c_bucket), row.get(c_key)) else {
                return Err(BackfillError::Inventory {
                    object: file.clone(),
                    reason: format!(
                        "line {}: {} fields, the schema has {}",
                        n + 1,
                        row.len(),
                        schema.len()
                    ),
                });
            };
            if *b != sel.bucket() {
                sel.skip("other_bucket");
                continue;
            }
            let flag = |c: Option<usize>| c.and_then(|c| row.get(c)).copied();
            if flag(c_deleted) == Some("true") || flag(c_latest) == Some("false") {
                sel.skip("delete_marker_or_old_version");
                continue;
            }
            let key = decode_notification_key(k);
            if !key.starts_with(prefix) {
                sel.skip("outside_prefix");
                continue;
            }
            let size = flag(c_size).and_then(|s| s.parse().ok());
            sel.offer(&key, size)?;
        }
    }
    Ok(())
}

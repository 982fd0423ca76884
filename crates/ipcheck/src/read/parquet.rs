//! Security Lake OCSF Parquet objects.
use ipsight_formats::ocsf::read_parquet_capped;
use tokio::io::AsyncWriteExt;

use super::{blocking, ReadContext};
use crate::pairs::Collected;

/// Parquet's footer is at the end: download to a capped temporary file, then read it.
pub(super) async fn read(
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    max_object_bytes: u64,
    ctx: ReadContext,
) -> Result<Collected, String> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    let file = tokio::fs::File::from_std(tmp.reopen().map_err(|e| format!("temporary file: {e}"))?);
    download_capped(reader, file, max_object_bytes).await?;
    let path = tmp.path().to_owned();
    blocking(move || {
        let f = std::fs::File::open(&path).map_err(|e| format!("temporary file: {e}"))?;
        let mut c = Collected::default();
        let mut over = None;
        let stats = read_parquet_capped(f, &ctx.mapping, ctx.cap, |p| {
            if over.is_none() {
                if let Err(e) = c.add_ocsf(p, ctx.max) {
                    over = Some(e);
                }
            }
        })
        .map_err(|e| e.to_string())?;
        drop(tmp);
        if let Some(e) = over {
            return Err(ctx.too_many(e));
        }
        c.events = stats.events;
        c.skipped = stats.events - stats.pairs;
        Ok(c)
    })
    .await
}

async fn download_capped(
    reader: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    mut file: tokio::fs::File,
    cap: u64,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut limited = reader.take(cap + 1);
    let n = tokio::io::copy(&mut limited, &mut file)
        .await
        .map_err(|e| format!("download failed: {e}"))?;
    if n > cap {
        return Err(format!(
            "object exceeds MAX_OBJECT_BYTES={cap} (downloaded to a temporary file before reading)"
        ));
    }
    file.flush()
        .await
        .map_err(|e| format!("temporary file: {e}"))?;
    Ok(())
}

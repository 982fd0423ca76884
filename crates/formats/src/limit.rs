//! A reader that refuses to yield more than a fixed number of bytes.
//!
//! A compressed object's size says nothing about its uncompressed size (a gzip bomb inflates 1000×),
//! so the cap is applied to the decompressed stream.
use std::io::{self, Read};

pub struct CappedReader<R> {
    inner: R,
    remaining: u64,
    cap: u64,
}

impl<R: Read> CappedReader<R> {
    pub fn new(inner: R, cap: u64) -> Self {
        Self {
            inner,
            remaining: cap,
            cap,
        }
    }
    /// Bytes read so far.
    pub fn consumed(&self) -> u64 {
        self.cap - self.remaining
    }
}

/// The error kind carried by [`CappedReader`] when the cap is crossed; its message names the cap.
pub fn is_cap_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::FileTooLarge
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Probe one byte: exactly `cap` bytes is fine, more is not.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::FileTooLarge,
                    format!("uncompressed size exceeds the cap of {} bytes", self.cap),
                )),
            };
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Wraps `r` in a gzip decoder when the stream starts with the gzip magic, so plain `.json`
/// (exported or hand-made samples) and `.json.gz` go through the same path. Concatenated gzip
/// members are all read.
pub fn maybe_gunzip<'a, R: io::BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else {
        Ok(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap() {
        let data = [b'x'; 100];
        let mut out = Vec::new();
        CappedReader::new(&data[..], 100)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), 100);
        let err = CappedReader::new(&data[..], 99)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(is_cap_error(&err));
        assert!(err.to_string().contains("99 bytes"));
    }
}

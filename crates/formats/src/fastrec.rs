//! A fast path for decoding one CloudTrail record: a hand-written scanner for the common shape (a
//! JSON object with plain, unescaped strings), picking out the four fields of [`Record`] and skipping
//! everything else without building anything.
//!
//! It is an *accelerator*, never an authority: it accepts only input that `serde_json` accepts too,
//! with the same result, and answers `None` for anything else (escapes in a key or a wanted string,
//! a duplicate wanted field, a structural error, a record cut off by the end of the window…). The
//! caller then decodes the same bytes with `serde_json`, which gives the exact value or error it
//! always gave. In particular it checks what `serde_json` checks when it skips a value (string
//! escapes and control characters, number syntax, literals, nesting) and no less, and validates
//! UTF-8 where `serde_json` does (keys of the record objects and the strings it returns).
use std::borrow::Cow;

use crate::cloudtrail::{Record, UserIdentity};

/// Deepest nesting of a skipped value handled here (`serde_json` skips any depth; deeper values fall
/// back to it).
const MAX_DEPTH: u32 = 64;

/// Decode the record object at the start of `s`. Returns the record and the bytes it spans, or
/// `None` when `serde_json` has to decide.
#[inline]
pub(crate) fn record(s: &[u8]) -> Option<(Record<'_>, usize)> {
    let mut rec = Record {
        user_identity: None,
        source_ip_address: None,
        event_source: None,
        event_time: None,
        user_agent: None,
    };
    let mut seen = 0u8;
    let mut i = object_start(s, 0)?;
    if s[i] == b'}' {
        return Some((rec, i + 1));
    }
    loop {
        let (key, v) = key(s, i)?;
        i = match key {
            b"userIdentity" => {
                once(&mut seen, 1)?;
                let (u, j) = opt_user_identity(s, v)?;
                rec.user_identity = u;
                j
            }
            b"sourceIPAddress" => {
                once(&mut seen, 2)?;
                let (x, j) = opt_str(s, v)?;
                rec.source_ip_address = x;
                j
            }
            b"eventSource" => {
                once(&mut seen, 4)?;
                let (x, j) = opt_str(s, v)?;
                rec.event_source = x;
                j
            }
            b"eventTime" => {
                once(&mut seen, 8)?;
                let (x, j) = opt_str(s, v)?;
                rec.event_time = x;
                j
            }
            b"userAgent" => {
                once(&mut seen, 16)?;
                let (x, j) = opt_str(s, v)?;
                rec.user_agent = x.map(bytes);
                j
            }
            _ => skip_value(s, v)?,
        };
        match next_member(s, i)? {
            Next::Key(j) => i = j,
            Next::End(j) => return Some((rec, j)),
        }
    }
}

fn opt_user_identity(s: &[u8], i: usize) -> Option<(Option<UserIdentity<'_>>, usize)> {
    match *s.get(i)? {
        b'n' => Some((None, lit(s, i, b"null")?)),
        b'{' => {
            let mut u = UserIdentity {
                identity_type: None,
                principal_id: None,
                account_id: None,
                arn: None,
                invoked_by: None,
            };
            let mut seen = 0u8;
            let mut i = object_start(s, i)?;
            if s[i] == b'}' {
                return Some((Some(u), i + 1));
            }
            loop {
                let (key, v) = key(s, i)?;
                i = match key {
                    b"type" => {
                        once(&mut seen, 1)?;
                        let (x, j) = opt_str(s, v)?;
                        u.identity_type = x;
                        j
                    }
                    b"principalId" => {
                        once(&mut seen, 2)?;
                        let (x, j) = opt_str(s, v)?;
                        u.principal_id = x;
                        j
                    }
                    b"accountId" => {
                        once(&mut seen, 4)?;
                        let (x, j) = opt_str(s, v)?;
                        u.account_id = x;
                        j
                    }
                    b"arn" => {
                        once(&mut seen, 8)?;
                        let (x, j) = opt_str(s, v)?;
                        u.arn = x.map(bytes);
                        j
                    }
                    b"invokedBy" => {
                        once(&mut seen, 16)?;
                        let (x, j) = opt_str(s, v)?;
                        u.invoked_by = x;
                        j
                    }
                    _ => skip_value(s, v)?,
                };
                match next_member(s, i)? {
                    Next::Key(j) => i = j,
                    Next::End(j) => return Some((Some(u), j)),
                }
            }
        }
        // A struct can also be written as an array for serde; rare enough to leave to it.
        _ => None,
    }
}

/// A string field kept as raw bytes (what serde_json's `deserialize_bytes` gives for a string).
#[inline]
fn bytes(c: Cow<'_, str>) -> Cow<'_, [u8]> {
    match c {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// A wanted field seen twice is an error for the derived deserializer: leave it to serde.
#[inline]
fn once(seen: &mut u8, bit: u8) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// `s[i]` must be `{`: returns the index of the first key's `"` or of the closing `}`.
#[inline]
fn object_start(s: &[u8], i: usize) -> Option<usize> {
    if *s.get(i)? != b'{' {
        return None;
    }
    let i = ws(s, i + 1);
    matches!(*s.get(i)?, b'"' | b'}').then_some(i)
}

/// A member key of a record-level object at `s[i]` (a `"`): the key's bytes (no escapes, valid
/// UTF-8, as serde's field matching needs) and the index of its value.
#[inline]
fn key(s: &[u8], i: usize) -> Option<(&[u8], usize)> {
    if *s.get(i)? != b'"' {
        return None;
    }
    let end = plain_str_end(s, i + 1)?;
    let key = &s[i + 1..end];
    if !key.is_ascii() && std::str::from_utf8(key).is_err() {
        return None;
    }
    let j = ws(s, end + 1);
    if *s.get(j)? != b':' {
        return None;
    }
    Some((key, ws(s, j + 1)))
}

enum Next {
    /// Index of the next key's `"`.
    Key(usize),
    /// Index just past the closing `}`.
    End(usize),
}

/// After a member's value: `,` and another key, or the end of the object.
#[inline]
fn next_member(s: &[u8], i: usize) -> Option<Next> {
    let i = ws(s, i);
    match *s.get(i)? {
        b',' => {
            let j = ws(s, i + 1);
            (*s.get(j)? == b'"').then_some(Next::Key(j))
        }
        b'}' => Some(Next::End(i + 1)),
        _ => None,
    }
}

/// `null` or a string without escapes (valid UTF-8), borrowed.
#[inline]
fn opt_str(s: &[u8], i: usize) -> Option<(Option<Cow<'_, str>>, usize)> {
    match *s.get(i)? {
        b'n' => Some((None, lit(s, i, b"null")?)),
        b'"' => {
            let end = plain_str_end(s, i + 1)?;
            Some((Some(Cow::Borrowed(utf8(&s[i + 1..end])?)), end + 1))
        }
        _ => None,
    }
}

/// `from_utf8`, with the all-ASCII case (nearly every CloudTrail value) checked inline.
#[inline]
fn utf8(b: &[u8]) -> Option<&str> {
    if b.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(b) })
    } else {
        std::str::from_utf8(b).ok()
    }
}

#[inline(always)]
fn ws(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = s.get(i) {
        i += 1;
    }
    i
}

#[inline]
fn lit(s: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    (s.get(i..i + word.len())? == word).then_some(i + word.len())
}

/// Index of the closing quote of a string whose body starts at `i`, if the body has no escape and no
/// control character.
#[inline]
fn plain_str_end(s: &[u8], i: usize) -> Option<usize> {
    let j = find_special(s, i);
    (*s.get(j)? == b'"').then_some(j)
}

/// Skip a string body starting at `i` (after the opening quote) like `serde_json`'s `ignore_str`:
/// escapes must be valid, control characters are refused, UTF-8 is not checked. Returns the index
/// past the closing quote.
#[inline]
fn skip_str(s: &[u8], mut i: usize) -> Option<usize> {
    loop {
        i = find_special(s, i);
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => match *s.get(i + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                b'u' => {
                    if !s.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    i += 6;
                }
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// A JSON number (`serde_json`'s `ignore_integer`/`ignore_decimal`/`ignore_exponent` grammar).
#[inline]
fn skip_num(s: &[u8], mut i: usize) -> Option<usize> {
    let digits = |s: &[u8], mut i: usize| {
        while let Some(b'0'..=b'9') = s.get(i) {
            i += 1;
        }
        i
    };
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    match *s.get(i)? {
        b'0' => {
            i += 1;
            if let Some(b'0'..=b'9') = s.get(i) {
                return None;
            }
        }
        b'1'..=b'9' => i = digits(s, i + 1),
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        let j = digits(s, i + 1);
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = s.get(i) {
            i += 1;
        }
        let j = digits(s, i);
        if j == i {
            return None;
        }
        i = j;
    }
    Some(i)
}

/// Skip any JSON value starting at `s[i]` (whitespace already skipped), without recursion, checking
/// what `serde_json`'s `ignore_value` checks. Returns the index past the value.
fn skip_value(s: &[u8], mut i: usize) -> Option<usize> {
    // Open containers, innermost in bit 0: 1 = object, 0 = array.
    let mut stack: u64 = 0;
    let mut depth = 0u32;
    loop {
        match *s.get(i)? {
            b'"' => i = skip_str(s, i + 1)?,
            c @ (b'{' | b'[') => {
                let obj = c == b'{';
                let j = ws(s, i + 1);
                if *s.get(j)? == if obj { b'}' } else { b']' } {
                    i = j + 1;
                } else {
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    stack = stack << 1 | obj as u64;
                    depth += 1;
                    i = if obj { skip_key(s, j)? } else { j };
                    continue;
                }
            }
            b'n' => i = lit(s, i, b"null")?,
            b't' => i = lit(s, i, b"true")?,
            b'f' => i = lit(s, i, b"false")?,
            b'-' | b'0'..=b'9' => i = skip_num(s, i)?,
            _ => return None,
        }
        // After a value: close finished containers, or step to the next element.
        loop {
            if depth == 0 {
                return Some(i);
            }
            i = ws(s, i);
            let obj = stack & 1 == 1;
            match *s.get(i)? {
                b',' => {
                    let j = ws(s, i + 1);
                    i = if obj { skip_key(s, j)? } else { j };
                    break;
                }
                b'}' if obj => {}
                b']' if !obj => {}
                _ => return None,
            }
            i += 1;
            stack >>= 1;
            depth -= 1;
        }
    }
}

/// A key inside a skipped object (`ignore_str` rules) and its colon: returns the value's index.
#[inline]
fn skip_key(s: &[u8], i: usize) -> Option<usize> {
    if *s.get(i)? != b'"' {
        return None;
    }
    let j = ws(s, skip_str(s, i + 1)?);
    if *s.get(j)? != b':' {
        return None;
    }
    Some(ws(s, j + 1))
}

/// Index of the first `"`, `\` or control character (< 0x20) at or after `i`, or `s.len()`.
#[inline(always)]
fn find_special(s: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of the x86_64 baseline: 16 bytes per step.
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is always available on x86_64; every load reads s[i..i + 16], in bounds.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let ctrl_max = _mm_set1_epi8(0x1f);
            while i + 16 <= s.len() {
                let v = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
                let q = _mm_cmpeq_epi8(v, quote);
                let b = _mm_cmpeq_epi8(v, backslash);
                // Unsigned v <= 0x1f  <=>  min(v, 0x1f) == v.
                let c = _mm_cmpeq_epi8(_mm_min_epu8(v, ctrl_max), v);
                let m = _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c)) as u32;
                if m != 0 {
                    return i + m.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // Eight bytes per step (the bit trick serde_json uses).
        const ONES: u64 = u64::MAX / 255;
        while i + 8 <= s.len() {
            let v = u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
            let ctrl = v.wrapping_sub(ONES * 0x20) & !v;
            let q = v ^ (ONES * b'"' as u64);
            let q = q.wrapping_sub(ONES) & !q;
            let b = v ^ (ONES * b'\\' as u64);
            let b = b.wrapping_sub(ONES) & !b;
            let m = (ctrl | q | b) & (ONES << 7);
            if m != 0 {
                return i + m.trailing_zeros() as usize / 8;
            }
            i += 8;
        }
    }
    while let Some(&c) = s.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json makes of the record at the start of `s`: the record and its length.
    fn serde(s: &[u8]) -> Option<(String, usize)> {
        let mut it = serde_json::Deserializer::from_slice(s).into_iter::<Record<'_>>();
        match it.next() {
            Some(Ok(r)) => Some((format!("{r:?}"), it.byte_offset())),
            _ => None,
        }
    }

    /// The fast path must agree with serde whenever it answers.
    fn check(s: &str) -> bool {
        let fast = record(s.as_bytes()).map(|(r, n)| (format!("{r:?}"), n));
        if let Some(f) = &fast {
            assert_eq!(Some(f), serde(s.as_bytes()).as_ref(), "{s}");
        }
        fast.is_some()
    }

    #[test]
    fn agrees_with_serde() {
        let ok = [
            r#"{}"#,
            r#"{ }"#,
            r#"{"userIdentity":null,"sourceIPAddress":null}"#,
            r#"{"userIdentity":{},"sourceIPAddress":"1.2.3.4"}"#,
            r#"{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDA1","accountId":"1","sessionContext":{"a":[1,2,{"b":"}"}],"c":{}}},"sourceIPAddress":"198.51.100.7","eventTime":"2024-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","x":[],"y":[[],{}],"n":-0.5e+10,"t":true,"f":false,"z":null}"#,
            "{\n \"a\" : [ 1 , \"x\\\"y\\u00e9\\n\" ] ,\t\"sourceIPAddress\" : \"1.1.1.1\" \r}",
            r#"{"userAgent":"caf\u00e9 \/ \\","k\u00e9y":1}"#,
            "{\"userAgent\":\"caf\u{e9} \u{1F600}\",\"cl\u{e9}\":1}",
            r#"{"a":0,"b":1.0,"c":1e5,"d":-12E-3,"e":123}"#,
            r#"{"a":{"b":{"c":{"d":[[[["deep"]]]]}}}}"#,
        ];
        for s in ok {
            // Escapes in skipped values are fine; in keys they go to serde.
            let _ = check(s);
        }
        assert!(check(ok[4]));
        assert!(check(ok[5]));
        assert!(check(ok[7]));
        assert!(check(ok[8]));
        // Each of these is refused by serde or decoded differently; the fast path must not answer.
        let refuse = [
            r#"{"a":1"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":.5}"#,
            r#"{"a":+1}"#,
            r#"{"a":nul}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":1,}"#,
            r#"{"a":{,}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a" 1}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12G4"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"sourceIPAddress":"1.1.1.1","sourceIPAddress":"2.2.2.2"}"#,
            r#"{"userIdentity":null,"userIdentity":null}"#,
            r#"{"userIdentity":{"type":"A","type":"B"}}"#,
            r#"{"sourceIPAddress":1}"#,
            r#"{"userIdentity":"x"}"#,
            r#"{"userIdentity":["IAMUser","AIDA1"]}"#,
            r#"{"sourceIPAddress":"1.1.1.\u0031"}"#,
            r#"{"source\u0049PAddress":"1.1.1.1"}"#,
            r#"[1]"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":1}}"#,
        ];
        for s in refuse {
            let fast = record(s.as_bytes());
            let agrees = match (&fast, serde(s.as_bytes())) {
                (None, _) => true,
                (Some((r, n)), Some((sr, sn))) => format!("{r:?}") == sr && *n == sn,
                (Some(_), None) => false,
            };
            assert!(agrees, "{s}: fast {fast:?}");
        }
        // Non-UTF-8: in a skipped string serde does not look, in a key or a wanted string it does.
        let mut b = br#"{"requestID":"x"#.to_vec();
        b.extend_from_slice(b"\xff\"}");
        assert!(record(&b).is_some() && serde(&b).is_some());
        let mut b = br#"{"sourceIPAddress":"x"#.to_vec();
        b.extend_from_slice(b"\xff\"}");
        assert!(record(&b).is_none() && serde(&b).is_none());
        let mut b = br#"{"k"#.to_vec();
        b.extend_from_slice(b"\xff\":1}");
        assert!(record(&b).is_none());
        // Deeper than MAX_DEPTH: serde's answer.
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(100), "]".repeat(100));
        assert!(record(deep.as_bytes()).is_none() && serde(deep.as_bytes()).is_some());
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(60), "]".repeat(60));
        assert!(check(&deep));
    }

    /// Random edits of real-looking records: whenever the fast path answers, serde agrees.
    #[test]
    fn random_mutations_agree_with_serde() {
        let seeds = [
            r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROA1:s","accountId":"1","sessionContext":{"attributes":{"mfa":"false"},"x":[1,-2.5e3,true,null]}},"eventTime":"2024-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","sourceIPAddress":"203.0.113.9","userAgent":"aws-cli/2 \"q\" \u00e9","requestParameters":null,"readOnly":false,"n":0}"#,
            r#"{"userIdentity":{"type":"Root","accountId":"123"},"sourceIPAddress":"AWS Internal","tlsDetails":{}, "a" : [ ] }"#,
        ];
        let alphabet: &[u8] = b"{}[]\",:\\ \t\n0123456789-+.eEnultrfasxu\x01\x1f\x7f\xc3\xa9\xff";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut answered = 0;
        for _ in 0..200_000 {
            let mut b = seeds[(next() % 2) as usize].as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % b.len() as u64) as usize;
                let c = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 => b[at] = c,
                    1 => b.insert(at, c),
                    _ => {
                        b.remove(at);
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            if let Some((r, n)) = record(&b) {
                answered += 1;
                assert_eq!(
                    Some((format!("{r:?}"), n)),
                    serde(&b),
                    "{}",
                    String::from_utf8_lossy(&b)
                );
            }
        }
        // Many edits land in skipped strings and stay valid: the fast path must still answer those.
        assert!(answered > 10_000, "{answered}");
    }

    #[test]
    fn every_prefix_is_incomplete() {
        // A record cut anywhere is never answered (the window may end mid-record).
        let s = r#"{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROA1:s","x":[1,{"y":-2.5e3}]},"sourceIPAddress":"203.0.113.9","readOnly":true}"#;
        assert!(check(s));
        for n in 0..s.len() {
            assert!(record(&s.as_bytes()[..n]).is_none(), "{n}");
        }
    }

    #[test]
    fn find_special_all_positions() {
        for len in 0..40 {
            for pos in 0..=len {
                for c in [b'"', b'\\', 0x00, 0x1f] {
                    let mut v = vec![b'a'; len];
                    if pos < len {
                        v[pos] = c;
                    }
                    assert_eq!(find_special(&v, 0), pos, "{len} {pos} {c}");
                }
                let v = vec![0x80u8 | 0x20; len];
                assert_eq!(find_special(&v, 0), len);
            }
        }
    }
}

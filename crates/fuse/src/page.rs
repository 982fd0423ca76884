//! `suspicious.html`: the report as one interactive page (no server, no CDN, no network): sort and
//! filter by risk, principal, ASN, country, finding type and status; a principal's drill-down with
//! its baseline (history, nearest known prefixes), networks, first/last seen beside the flagged
//! pair and its explanation; the score plot. Filters live in the URL fragment
//! (`#principal=AIDA…&country=FR`), so a link names a view.
//!
//! The rows are embedded as the report's own JSON (the same document as `suspicious.json`), so
//! every field a row carries reaches the page. Text from findings (principal names, finding types)
//! is attacker-influenced: the script only ever sets it as text, never as markup, and the JSON is
//! embedded with every `<` escaped, so no value can close the script element.
use crate::report::Report;

const TEMPLATE: &str = include_str!("page.html");

/// The page for a report: a single, self-contained HTML document.
pub fn html(report: &Report) -> String {
    let json = serde_json::to_string(report).expect("report serialises");
    // `<` only occurs inside JSON strings, where `\u003c` means the same character.
    let data = json.replace('<', "\\u003c");
    let date = report
        .date
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    TEMPLATE
        .replacen("__DATE__", &date, 1)
        .replacen("__DATA__", &data, 1)
}

impl Report {
    /// `suspicious.html` (see [`html`]).
    pub fn to_html(&self) -> Vec<u8> {
        html(self).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_the_script() {
        let mut r = Report {
            date: "2026-01-20".into(),
            formula: crate::report::FORMULA,
            summary: Default::default(),
            rows: Vec::new(),
        };
        r.date = "</script><script>alert(1)</script>".into();
        let page = html(&r);
        assert_eq!(
            page.matches("</script>").count(),
            2,
            "only the page's own two"
        );
        assert!(page.contains("\\u003c/script>"));
    }
}

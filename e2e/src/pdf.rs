//! PDFs checked with poppler's tools (pdfinfo, pdftotext, pdftoppm), as a user would.

use std::process::Command;

/// Runs a poppler tool on PDF bytes and returns its stdout; panics if the tool refuses them.
pub fn poppler(tool: &str, pdf: &[u8], extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let mut cmd = Command::new(tool);
    cmd.args(extra).arg(&path);
    if tool == "pdftotext" {
        cmd.arg("-");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{tool}: {e} (`make setup` installs it)"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (pages, width pt, height pt) of page 1, from pdfinfo.
pub fn page_info(pdf: &[u8]) -> (u32, f64, f64) {
    let info = poppler("pdfinfo", pdf, &[]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in pdfinfo output:\n{info}"))
            .to_owned()
    };
    let pages = field("Pages:").parse().unwrap();
    let size = field("Page size:");
    let mut it = size.split_whitespace();
    let w = it.next().unwrap().parse().unwrap();
    it.next();
    let h = it.next().unwrap().parse().unwrap();
    (pages, w, h)
}

/// Where the first word of page 1 starts: (x, y) of its box's top left corner in points from
/// the page's top left, from `pdftotext -bbox`.
pub fn first_word_at(pdf: &[u8]) -> (f64, f64) {
    let html = poppler("pdftotext", pdf, &["-bbox", "-f", "1", "-l", "1"]);
    let word =
        html.find("<word ").map(|i| &html[i..]).unwrap_or_else(|| panic!("no word:\n{html}"));
    let attr = |name: &str| -> f64 {
        let start = word.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        word[start..].split('"').next().unwrap().parse().unwrap()
    };
    (attr("xMin"), attr("yMin"))
}

//! PDFs checked with poppler's tools (pdfinfo, pdftotext, pdftoppm), as a user would.

use std::process::Command;

/// Runs a poppler tool on PDF bytes and returns its stdout; panics if the tool refuses them.
pub fn poppler(tool: &str, pdf: &[u8], extra: &[&str]) -> String {
    let after: &[&str] = if tool == "pdftotext" { &["-"] } else { &[] };
    let (code, stdout, stderr) = run_on(tool, pdf, extra, after);
    assert_eq!(code, 0, "{tool} failed: {stderr}");
    stdout
}

/// Page 1 rasterized at `dpi` (pdftoppm, PPM bytes): what a reader sees, to compare.
pub fn raster(pdf: &[u8], dpi: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = dir.path().join("page");
    let status = Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-f", "1", "-l", "1", "-singlefile"])
        .arg(&path)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("pdftoppm: {e} (`make setup` installs it)"));
    assert!(status.success(), "pdftoppm failed");
    std::fs::read(dir.path().join("page.ppm")).unwrap()
}

/// Pixels of a PPM raster whose colour is not a grey (its channels differ).
pub fn coloured_pixels(ppm: &[u8]) -> usize {
    // The header is four whitespace-separated fields: P6, width, height, max.
    let mut fields = 0;
    let mut at = 0;
    while fields < 4 && at < ppm.len() {
        while at < ppm.len() && ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        while at < ppm.len() && !ppm[at].is_ascii_whitespace() {
            at += 1;
        }
        fields += 1;
    }
    ppm[at + 1..]
        .chunks_exact(3)
        .filter(|p| p[0].abs_diff(p[1]) > 16 || p[1].abs_diff(p[2]) > 16)
        .count()
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

/// Runs a tool on PDF bytes: (exit code, stdout, stderr). For tools whose refusal is the
/// answer being tested (a wrong password).
pub fn run_on(tool: &str, pdf: &[u8], before: &[&str], after: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new(tool)
        .args(before)
        .arg(&path)
        .args(after)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (`make setup` installs it)"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The jars of Apache PDFBox Preflight and what it needs, as Debian installs them
/// (libpdfbox2-java, libactivation-java, libjaxb-api-java).
const PREFLIGHT_JARS: [&str; 7] = [
    "preflight",
    "pdfbox2",
    "fontbox2",
    "xmpbox",
    "commons-logging",
    "javax.activation",
    "jaxb-api",
];

/// Apache PDFBox Preflight's verdict on `pdf`: the codes and messages of every error it
/// found (empty: a valid PDF/A-1b). Preflight checks ISO 19005-1 (PDF/A-1b); veraPDF, which
/// checks part 2, is not to be had here (it is only on Maven Central).
pub fn preflight(pdf: &[u8]) -> Vec<(String, String)> {
    let classpath: Vec<String> =
        PREFLIGHT_JARS.iter().map(|j| format!("/usr/share/java/{j}.jar")).collect();
    let (code, stdout, stderr) = run_on(
        "java",
        pdf,
        &["-cp", &classpath.join(":"), "org.apache.pdfbox.preflight.Validator_A1b"],
        &[],
    );
    // Its exit code is no verdict (255 for any number of errors): its report is.
    assert!(
        stdout.contains("a valid PDF/A-1b file"),
        "Preflight did not run ({code}): {stdout}{stderr}\n(`make setup` installs it)"
    );
    let errors: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| {
            let (code, message) = l.split_once(" : ")?;
            let code = code.trim();
            code.chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                .then(|| (code.to_owned(), message.to_owned()))
        })
        .collect();
    assert_eq!(
        errors.is_empty(),
        stdout.contains("is a valid PDF/A-1b file"),
        "Preflight's output not understood:\n{stdout}\n{stderr}"
    );
    errors
}

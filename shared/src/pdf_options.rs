//! `pdfOptions`: Puppeteer's `page.pdf()` options by their Puppeteer names, and the page
//! geometry they mean (in inches, as Chromium's printToPDF takes it).

use serde::{Deserialize, Serialize};

use crate::{
    limits::MAX_TEMPLATE_BYTES,
    postprocess::{Metadata, Password, PdfA},
};

/// Puppeteer's default paper when neither `format` nor `width`/`height` is given.
pub const DEFAULT_FORMAT: PaperFormat = PaperFormat::Letter;
/// Chromium's printToPDF accepts scales in this range.
pub const SCALE_RANGE: std::ops::RangeInclusive<f64> = 0.1..=2.0;
/// The largest page side we accept (Chromium itself caps pages around 200 inches).
pub const MAX_PAGE_INCHES: f64 = 200.0;
/// The smallest page side, and the least room margins must leave: far smaller sizes (1e-10
/// px) bring Chromium's printing down.
pub const MIN_PAGE_INCHES: f64 = 0.1;

/// Below [`MIN_PAGE_INCHES`], give or take rounding (9.6 px is 0.1 in).
fn below_min(inches: f64) -> bool {
    inches < MIN_PAGE_INCHES - 1e-9
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PdfOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landscape: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub print_background: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<Margin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<Length>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<Length>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_ranges: Option<String>,
    #[serde(default, rename = "preferCSSPageSize", skip_serializing_if = "Option::is_none")]
    pub prefer_css_page_size: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_header_footer: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer_template: Option<String>,
    /// A tagged (accessible) PDF. Default: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagged: Option<bool>,
    /// A document outline (bookmarks) from the headings. Default: on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outline: Option<bool>,
    /// Encrypt with AES-256: a password to open, permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// Info dictionary and XMP metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// A PDF/A conformance level: `"2b"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdfa: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Margin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<Length>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right: Option<Length>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottom: Option<Length>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<Length>,
}

/// A length as Puppeteer takes it: a number of CSS pixels, or a string with `px`, `in`, `cm`
/// or `mm` (a bare number in a string is pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Length {
    Pixels(f64),
    Text(String),
}

impl Length {
    /// The length in inches, or a message saying what is wrong.
    pub fn inches(&self) -> Result<f64, String> {
        let how =
            "write a number of pixels or a string such as \"10mm\", \"1in\", \"2.5cm\" or \"96px\"";
        let value = match self {
            Self::Pixels(px) => px / 96.0,
            Self::Text(text) => {
                let t = text.trim().to_ascii_lowercase();
                let (number, per_inch) = if let Some(n) = t.strip_suffix("px") {
                    (n, 96.0)
                } else if let Some(n) = t.strip_suffix("in") {
                    (n, 1.0)
                } else if let Some(n) = t.strip_suffix("cm") {
                    (n, 2.54)
                } else if let Some(n) = t.strip_suffix("mm") {
                    (n, 25.4)
                } else {
                    (t.as_str(), 96.0)
                };
                let n = decimal(number.trim())
                    .ok_or_else(|| format!("{text:?} is not a length: {how}"))?;
                n / per_inch
            }
        };
        if !value.is_finite() || value < 0.0 {
            return Err(format!("must be a length of zero or more: {how}"));
        }
        if value > MAX_PAGE_INCHES {
            return Err(format!("is over {MAX_PAGE_INCHES} inches"));
        }
        Ok(value)
    }
}

/// `digits`, `digits.digits` or `.digits` (openapi.yaml's Length pattern), as a number. What
/// a float parser would take besides (`1e2`, `+5`, `inf`) is not a length.
fn decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or(("", text));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    crate::number::parse_decimal(text)
}

/// `format: "custom"` (TailPDF's clients send it): the page is `width` × `height`.
pub const CUSTOM_FORMAT: &str = "custom";

/// Where the page size comes from.
enum Paper {
    /// A paper format; `width` and `height` are ignored.
    Format(PaperFormat),
    /// `width` and `height`, each defaulting to [`DEFAULT_FORMAT`]'s.
    Sized,
}

/// Puppeteer's paper formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaperFormat {
    Letter,
    Legal,
    Tabloid,
    Ledger,
    A0,
    A1,
    A2,
    A3,
    A4,
    A5,
    A6,
}

impl PaperFormat {
    pub const ALL: [Self; 11] = [
        Self::Letter,
        Self::Legal,
        Self::Tabloid,
        Self::Ledger,
        Self::A0,
        Self::A1,
        Self::A2,
        Self::A3,
        Self::A4,
        Self::A5,
        Self::A6,
    ];

    /// Case-insensitive, as Puppeteer.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Letter => "Letter",
            Self::Legal => "Legal",
            Self::Tabloid => "Tabloid",
            Self::Ledger => "Ledger",
            Self::A0 => "A0",
            Self::A1 => "A1",
            Self::A2 => "A2",
            Self::A3 => "A3",
            Self::A4 => "A4",
            Self::A5 => "A5",
            Self::A6 => "A6",
        }
    }

    /// (width, height) in inches, portrait, as Puppeteer's table.
    pub fn inches(self) -> (f64, f64) {
        match self {
            Self::Letter => (8.5, 11.0),
            Self::Legal => (8.5, 14.0),
            Self::Tabloid => (11.0, 17.0),
            Self::Ledger => (17.0, 11.0),
            Self::A0 => (33.1102, 46.811),
            Self::A1 => (23.3858, 33.1102),
            Self::A2 => (16.5354, 23.3858),
            Self::A3 => (11.6929, 16.5354),
            Self::A4 => (8.2677, 11.6929),
            Self::A5 => (5.8268, 8.2677),
            Self::A6 => (4.1339, 5.8268),
        }
    }
}

/// The page geometry `pdfOptions` asks for, in inches (before `landscape`, which printToPDF
/// applies itself).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageGeometry {
    pub width: f64,
    pub height: f64,
    pub margin_top: f64,
    pub margin_right: f64,
    pub margin_bottom: f64,
    pub margin_left: f64,
}

impl PdfOptions {
    /// Checks every option; the error names the field (`pdfOptions.margin.top`) and the fix.
    pub fn validate(&self) -> Result<PageGeometry, String> {
        if let Some(scale) = self.scale {
            if !SCALE_RANGE.contains(&scale) {
                return Err(format!(
                    "`pdfOptions.scale` is {scale}: it must be between 0.1 and 2."
                ));
            }
        }
        if let Some(ranges) = &self.page_ranges {
            check_page_ranges(ranges).map_err(|e| {
                format!("`pdfOptions.pageRanges` {e}: write pages like \"1-5, 8, 11-13\".")
            })?;
        }
        for (name, template) in
            [("headerTemplate", &self.header_template), ("footerTemplate", &self.footer_template)]
        {
            if template.as_ref().is_some_and(|t| t.len() > MAX_TEMPLATE_BYTES) {
                return Err(format!(
                    "`pdfOptions.{name}` is over {MAX_TEMPLATE_BYTES} bytes: keep templates small \
                     (a logo as a small data: URL is fine)."
                ));
            }
            if let Some(what) = template.as_deref().and_then(template_load) {
                return Err(format!(
                    "`pdfOptions.{name}` loads {what}: Chromium cannot print a header or footer \
                     that loads a stylesheet or a font. Put the CSS in a <style> element of the \
                     template (a font as a data: URL)."
                ));
            }
        }
        self.postprocess()?;
        self.geometry()
    }

    /// The PDF/A level asked for, once [`Self::validate`] has passed.
    pub fn pdfa(&self) -> Option<PdfA> {
        self.pdfa.as_deref().and_then(|name| PdfA::parse(name).ok())
    }

    fn postprocess(&self) -> Result<Option<PdfA>, String> {
        crate::postprocess::validate(
            self.password.as_ref(),
            self.metadata.as_ref(),
            self.pdfa.as_deref(),
        )
    }

    /// Fields that were sent but play no part: as in Puppeteer, a paper `format` decides the
    /// page size, and `width` and `height` beside it are ignored.
    pub fn ignored_fields(&self) -> Vec<&'static str> {
        if !matches!(self.paper(), Ok(Paper::Format(_))) {
            return Vec::new();
        }
        [("width", &self.width), ("height", &self.height)]
            .into_iter()
            .filter_map(|(name, value)| value.is_some().then_some(name))
            .collect()
    }

    /// What `format` asks for. An empty one is no format, as in Puppeteer (`if (format)`).
    fn paper(&self) -> Result<Paper, String> {
        let name = self.format.as_deref().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Ok(Paper::Sized);
        }
        if name.eq_ignore_ascii_case(CUSTOM_FORMAT) {
            if self.width.is_none() || self.height.is_none() {
                return Err(String::from(
                    "`pdfOptions.format` \"custom\" means a page of `pdfOptions.width` × \
                     `pdfOptions.height`: send both, e.g. \"width\": 595.5, \"height\": 842 (pixels) \
                     or \"width\": \"210mm\", \"height\": \"297mm\".",
                ));
            }
            return Ok(Paper::Sized);
        }
        PaperFormat::parse(name).map(Paper::Format).ok_or_else(|| {
            let names: Vec<&str> = PaperFormat::ALL.iter().map(|f| f.name()).collect();
            format!(
                "`pdfOptions.format` {name:?} is not a paper format: use one of {} (any case), \
                 or \"custom\" with `width` and `height`.",
                names.join(", ")
            )
        })
    }

    fn geometry(&self) -> Result<PageGeometry, String> {
        let side = |field: &str, len: &Option<Length>, default: f64| -> Result<f64, String> {
            match len {
                None => Ok(default),
                Some(l) => {
                    let v = l.inches().map_err(|e| format!("`pdfOptions.{field}` {e}."))?;
                    if below_min(v) && !field.starts_with("margin") {
                        return Err(format!(
                            "`pdfOptions.{field}` must be at least {MIN_PAGE_INCHES} inches \
                             (9.6 px, 2.54 mm)."
                        ));
                    }
                    Ok(v)
                }
            }
        };
        let (width, height) = match self.paper()? {
            Paper::Format(format) => format.inches(),
            Paper::Sized => {
                let (w, h) = DEFAULT_FORMAT.inches();
                (side("width", &self.width, w)?, side("height", &self.height, h)?)
            }
        };
        let margin = self.margin.clone().unwrap_or_default();
        let g = PageGeometry {
            width,
            height,
            margin_top: side("margin.top", &margin.top, 0.0)?,
            margin_right: side("margin.right", &margin.right, 0.0)?,
            margin_bottom: side("margin.bottom", &margin.bottom, 0.0)?,
            margin_left: side("margin.left", &margin.left, 0.0)?,
        };
        let (w, h) =
            if self.landscape == Some(true) { (g.height, g.width) } else { (g.width, g.height) };
        if below_min(w - (g.margin_left + g.margin_right))
            || below_min(h - (g.margin_top + g.margin_bottom))
        {
            return Err(String::from(
                "`pdfOptions.margin` leaves no room for content on the page: make the margins \
                 smaller or the page larger.",
            ));
        }
        Ok(g)
    }
}

/// Chromium's page-range syntax: `1-5, 8, 11-13`, also `3-` and `-4`; pages count from 1.
fn check_page_ranges(ranges: &str) -> Result<(), String> {
    if ranges.trim().is_empty() {
        return Ok(()); // all pages
    }
    let page = |s: &str| -> Result<Option<u32>, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        match s.parse::<u32>() {
            Ok(0) => Err(String::from("has page 0, but pages count from 1")),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(format!("has {s:?}, which is not a page number")),
        }
    };
    for part in ranges.split(',') {
        match part.split_once('-') {
            None => {
                page(part)?.ok_or_else(|| String::from("has an empty entry"))?;
            }
            Some((a, b)) => match (page(a)?, page(b)?) {
                (Some(a), Some(b)) if a > b => {
                    return Err(format!("has the range {a}-{b}, which runs backwards"))
                }
                (None, None) => return Err(String::from("has a range with no pages")),
                _ => {}
            },
        }
    }
    Ok(())
}

/// What a header or footer template loads from a URL that makes Chromium's print fail: a
/// stylesheet (`<link rel=stylesheet>`, `@import`) or a web font (`@font-face`). A lexical
/// look: one it misses (CSS escapes) fails the print, which the renderer reports as such.
fn template_load(template: &str) -> Option<&'static str> {
    let lower = template.to_ascii_lowercase();
    let links = lower.match_indices("<link").any(|(at, _)| {
        let tag = &lower[at..lower[at..].find('>').map_or(lower.len(), |end| at + end)];
        tag.contains("stylesheet") && attribute(tag, "href").is_some_and(loads)
    });
    if links {
        return Some("a stylesheet from a URL (<link rel=stylesheet>)");
    }
    let imports = lower.match_indices("@import").any(|(at, _)| {
        let rest = lower[at + "@import".len()..].trim_start();
        let rest = rest.strip_prefix("url(").unwrap_or(rest);
        loads(unquoted(rest))
    });
    if imports {
        return Some("a stylesheet from a URL (@import)");
    }
    let fonts = lower.match_indices("@font-face").any(|(at, _)| {
        let block = &lower[at..lower[at..].find('}').map_or(lower.len(), |end| at + end)];
        block.match_indices("url(").any(|(u, _)| loads(unquoted(&block[u + "url(".len()..])))
    });
    fonts.then_some("a web font from a URL (@font-face)")
}

/// The value of attribute `name` of a tag's text, quoted or not.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    tag.match_indices(name).find_map(|(at, _)| {
        let before = tag[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_whitespace() || c == '"' || c == '\'') {
            return None;
        }
        let value = tag[at + name.len()..].trim_start().strip_prefix('=')?;
        Some(unquoted(value))
    })
}

/// The start of a CSS or attribute value without its opening quote.
fn unquoted(value: &str) -> &str {
    value.trim_start().trim_start_matches(['"', '\''])
}

/// Whether a URL (the start of a value) names a scheme that loads something: any scheme but
/// `data:`. A relative URL loads nothing in a template, whose base is `about:blank`.
fn loads(url: &str) -> bool {
    let Some(colon) = url.find(':') else { return false };
    let scheme = &url[..colon];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme && scheme != "data"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: &str) -> PdfOptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn post_processing_options_are_checked_with_the_rest() {
        let e = opts(r#"{"format":"A4","pdfa":"1b"}"#).validate().unwrap_err();
        assert!(e.contains("`pdfOptions.pdfa`"), "{e}");
        let e = opts(r#"{"password":{"user":"a","owner":"a"}}"#).validate().unwrap_err();
        assert!(e.contains("`pdfOptions.password.owner`"), "{e}");
        let ok = opts(r#"{"pdfa":"2b","metadata":{"title":"T"}}"#);
        assert!(ok.validate().is_ok());
        assert_eq!(ok.pdfa(), Some(PdfA::A2b));
        assert_eq!(PdfOptions::default().pdfa(), None);
    }

    #[test]
    fn templates_that_load_stylesheets_or_fonts_from_urls_are_refused() {
        let refused = [
            "<link rel=stylesheet href=https://cdn.example/a.css><span>x</span>",
            "<LINK REL=\"preload stylesheet\" HREF = 'http://127.0.0.1:9/a.css'>",
            "<style>@import url(https://fonts.example/css);</style>",
            "<style>@IMPORT 'ftp://x.example/a.css' print;</style>",
            "<style>@font-face{font-family:X;src:local(X),url( \"https://x.example/a.woff2\" )}</style>",
        ];
        for template in refused {
            let json =
                serde_json::json!({ "displayHeaderFooter": true, "footerTemplate": template });
            let e = serde_json::from_value::<PdfOptions>(json).unwrap().validate().unwrap_err();
            assert!(e.starts_with("`pdfOptions.footerTemplate`"), "{template}: {e}");
            assert!(e.contains("<style>"), "says what to do instead: {e}");
        }
        // What Chromium prints: inline CSS, data: URLs, relative and protocol-relative URLs
        // (nothing to load from about:blank), images, `local()` fonts.
        let printed = [
            "<style>span{color:red}</style><span class=\"pageNumber\"></span>",
            "<link rel=stylesheet href=\"data:text/css,span{color:red}\">",
            "<style>@import url(\"data:text/css,b{}\");@import 'x.css';</style>",
            "<link rel=stylesheet href=a.css><link rel=\"preload stylesheet\" href=//x.example/a.css>",
            "<img src=https://x.example/logo.png><link rel=icon href=https://x.example/i.ico>",
            "<style>@font-face{font-family:X;src:local(Arial)} b{background:url(https://x.example/a.png)}</style>",
        ];
        for template in printed {
            let json =
                serde_json::json!({ "displayHeaderFooter": true, "headerTemplate": template });
            let options = serde_json::from_value::<PdfOptions>(json).unwrap();
            assert!(options.validate().is_ok(), "{template}: {:?}", options.validate());
        }
    }

    #[test]
    fn defaults_to_letter_without_margins() {
        let g = PdfOptions::default().validate().unwrap();
        assert_eq!((g.width, g.height), (8.5, 11.0));
        assert_eq!(g.margin_top, 0.0);
    }

    #[test]
    fn formats_are_case_insensitive() {
        for name in ["a4", "A4", "letter", "LEDGER", "a0", "A6", "Tabloid", "legal"] {
            assert!(PaperFormat::parse(name).is_some(), "{name}");
        }
        let g = opts(r#"{"format":"a4"}"#).validate().unwrap();
        assert_eq!((g.width, g.height), (8.2677, 11.6929));
        let e = opts(r#"{"format":"B5"}"#).validate().unwrap_err();
        assert!(e.contains("`pdfOptions.format`") && e.contains("A4"), "{e}");
        assert!(e.contains("\"custom\""), "{e}");
        for (name, w, h) in
            [("tabloid", 11.0, 17.0), ("LEDGER", 17.0, 11.0), ("a3", 11.6929, 16.5354)]
        {
            let g = opts(&format!(r#"{{"format":"{name}"}}"#)).validate().unwrap();
            assert_eq!((g.width, g.height), (w, h), "{name}");
        }
    }

    #[test]
    fn lengths_in_every_unit() {
        let inch = |s: &str| Length::Text(s.into()).inches().unwrap();
        assert_eq!(inch("1in"), 1.0);
        assert_eq!(inch("25.4mm"), 1.0);
        assert_eq!(inch("2.54cm"), 1.0);
        assert_eq!(inch("96px"), 1.0);
        assert_eq!(inch("48"), 0.5);
        assert_eq!(Length::Pixels(192.0).inches().unwrap(), 2.0);
        assert!(Length::Text("10pt".into()).inches().unwrap_err().contains("not a length"));
        assert!(Length::Pixels(-1.0).inches().is_err());
        assert_eq!(inch(" .5 IN "), 0.5);
        // Only what openapi.yaml's Length pattern allows: digits with an optional fraction.
        for text in ["", " ", "in", "1e2", "+5", "-0", "5.", "inf", "NaN", "0x10", "1_000", "1.2.3"]
        {
            assert!(Length::Text(text.into()).inches().is_err(), "{text:?} was taken");
        }
    }

    #[test]
    fn width_and_height_size_the_page_without_a_paper_format() {
        let g = opts(r#"{"width":"4in","height":"6in"}"#).validate().unwrap();
        assert_eq!((g.width, g.height), (4.0, 6.0));
        let g = opts(r#"{"format":"","width":595.5,"height":"842"}"#).validate().unwrap();
        assert_eq!((g.width, g.height), (595.5 / 96.0, 842.0 / 96.0));
        // Only one side: the other is Letter's, as in Puppeteer.
        assert_eq!(opts(r#"{"width":"4in"}"#).validate().unwrap().height, 11.0);
        assert!(opts(r#"{"width":0}"#).validate().unwrap_err().contains("at least 0.1 inches"));
        // Found by the schema fuzzer: a page of 1e-10 px brought Chromium down (a 500).
        for tiny in [r#"{"width":1e-10}"#, r#"{"height":"0.09in"}"#, r#"{"width":"2mm"}"#] {
            let e = opts(tiny).validate().unwrap_err();
            assert!(e.contains("at least 0.1 inches"), "{tiny}: {e}");
        }
        assert!(opts(r#"{"width":"0.1in","height":9.6}"#).validate().is_ok());
        assert!(opts(r#"{"height":"300in"}"#).validate().unwrap_err().contains("over 200"));
    }

    #[test]
    fn a_paper_format_wins_over_width_and_height_as_in_puppeteer() {
        let o = opts(r#"{"format":"a4","width":"4in","height":"oops"}"#);
        let g = o.validate().unwrap();
        assert_eq!((g.width, g.height), (8.2677, 11.6929));
        assert_eq!(o.ignored_fields(), ["width", "height"]);
        assert!(opts(r#"{"width":"4in"}"#).ignored_fields().is_empty());
    }

    #[test]
    fn custom_format_is_width_by_height_and_needs_both() {
        for format in ["custom", "Custom", "CUSTOM"] {
            let o = opts(&format!(r#"{{"format":"{format}","width":595.5,"height":842}}"#));
            let g = o.validate().unwrap();
            assert_eq!((g.width, g.height), (595.5 / 96.0, 842.0 / 96.0));
            assert!(o.ignored_fields().is_empty());
        }
        for partial in [r#"{"format":"custom"}"#, r#"{"format":"custom","width":100}"#] {
            let e = opts(partial).validate().unwrap_err();
            assert!(e.starts_with("`pdfOptions.format` \"custom\""), "{e}");
            assert!(e.contains("width") && e.contains("height"), "{e}");
        }
    }

    #[test]
    fn margins_are_named_and_must_leave_room() {
        let g = opts(r#"{"margin":{"top":"10mm","left":"1in"}}"#).validate().unwrap();
        assert!((g.margin_top - 10.0 / 25.4).abs() < 1e-12);
        assert_eq!(g.margin_left, 1.0);
        let e = opts(r#"{"margin":{"top":"abc"}}"#).validate().unwrap_err();
        assert!(e.starts_with("`pdfOptions.margin.top`"), "{e}");
        let e = opts(r#"{"margin":{"left":"5in","right":"4in"}}"#).validate().unwrap_err();
        assert!(e.contains("no room"), "{e}");
        // Letter is 8.5in wide: room must be at least the smallest page.
        let e = opts(r#"{"margin":{"left":"4.25in","right":"4.2in"}}"#).validate().unwrap_err();
        assert!(e.contains("no room"), "{e}");
        assert!(opts(r#"{"margin":{"left":"4.2in","right":"4.2in"}}"#).validate().is_ok());
        // Landscape Letter is 11in wide, so the same margins fit.
        assert!(opts(r#"{"landscape":true,"margin":{"left":"5in","right":"4in"}}"#)
            .validate()
            .is_ok());
    }

    #[test]
    fn scale_between_point_one_and_two() {
        assert!(opts(r#"{"scale":0.1}"#).validate().is_ok());
        assert!(opts(r#"{"scale":2}"#).validate().is_ok());
        assert!(opts(r#"{"scale":2.5}"#).validate().unwrap_err().contains("between 0.1 and 2"));
    }

    #[test]
    fn page_ranges_syntax() {
        for ok in ["", "1", "1-5, 8, 11-13", "3-", "-4"] {
            assert!(check_page_ranges(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("0", "page 0"),
            ("5-2", "backwards"),
            ("a", "not a page"),
            ("1,,2", "empty"),
            ("-", "no pages"),
        ] {
            assert!(check_page_ranges(bad).unwrap_err().contains(needle), "{bad}");
        }
        assert!(opts(r#"{"pageRanges":"2-1"}"#)
            .validate()
            .unwrap_err()
            .contains("pdfOptions.pageRanges"));
    }

    #[test]
    fn oversized_templates_are_refused() {
        let o = PdfOptions {
            footer_template: Some("x".repeat(MAX_TEMPLATE_BYTES + 1)),
            ..Default::default()
        };
        assert!(o.validate().unwrap_err().contains("footerTemplate"));
    }

    #[test]
    fn unknown_keys_are_refused_by_serde() {
        let e = serde_json::from_str::<PdfOptions>(r#"{"formt":"A4"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown field `formt`"), "{e}");
        assert!(serde_json::from_str::<Margin>(r#"{"middle":"1in"}"#).is_err());
    }

    #[test]
    fn puppeteer_names_round_trip() {
        let json = r#"{"format":"A4","landscape":false,"printBackground":true,"scale":1.0,"margin":{"top":"10mm","right":10.0},"pageRanges":"1-2","preferCSSPageSize":true,"displayHeaderFooter":true,"headerTemplate":"<span class=\"title\"></span>","footerTemplate":"<span class=\"pageNumber\"></span>/<span class=\"totalPages\"></span>","tagged":true,"outline":false}"#;
        let o: PdfOptions = serde_json::from_str(json).unwrap();
        let back: serde_json::Value = serde_json::to_value(&o).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(json).unwrap());
    }
}

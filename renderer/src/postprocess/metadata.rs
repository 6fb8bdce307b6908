//! The Info dictionary and the XMP metadata stream, written from the same fields so that they
//! agree (PDF/A requires it): `pdfOptions.metadata`, else the document's `<title>` (which
//! Chromium put in Info) and tailpdf as creator and producer.

use lopdf::{dictionary, Object, Stream, StringFormat};
use tailpdf_shared::{
    postprocess::{Metadata, PdfA},
    Timestamp,
};

use super::Edits;

/// `producer` unless the request names one.
pub const PRODUCER: &str = concat!("tailpdf ", env!("CARGO_PKG_VERSION"));
/// `creator` unless the request names one.
pub const CREATOR: &str = "tailpdf";

/// What goes into both the Info dictionary and XMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub title: Option<String>,
    pub author: Option<String>,
    pub subject: Option<String>,
    pub keywords: Option<String>,
    pub creator: String,
    pub producer: String,
    pub created: Timestamp,
    pub modified: Timestamp,
}

impl Fields {
    /// The request's fields over the document's title ([`document_title`]) and the defaults.
    /// Empty strings are left out.
    pub fn new(
        given: Option<&Metadata>,
        document_title: Option<String>,
        now: Timestamp,
    ) -> Result<Self, String> {
        let given = given.cloned().unwrap_or_default();
        let created = given.creation_date()?.unwrap_or(now);
        let some = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
        Ok(Self {
            title: some(given.title).or_else(|| some(document_title)),
            author: some(given.author),
            subject: some(given.subject),
            keywords: some(given.keywords.map(|k| k.joined())),
            creator: some(given.creator).unwrap_or_else(|| CREATOR.to_owned()),
            producer: some(given.producer).unwrap_or_else(|| PRODUCER.to_owned()),
            created,
            modified: now,
        })
    }
}

/// The title Chromium wrote into Info: the document's `<title>`, or without one its URL,
/// which is no title.
pub(super) fn document_title(edits: &Edits<'_>) -> Option<String> {
    let info = edits.resolve(edits.trailer().get(b"Info").ok()?)?;
    let title = edits.resolve(info.as_dict().ok()?.get(b"Title").ok()?)?;
    let title = decode_text(title.as_str().ok()?);
    (title != "about:blank").then_some(title)
}

/// A PDF text string: UTF-16BE after a byte-order mark, else PDFDocEncoding (Latin-1 where
/// Chromium writes it).
pub fn decode_text(bytes: &[u8]) -> String {
    match bytes.strip_prefix(&[0xFE, 0xFF]) {
        Some(utf16) => {
            let units = utf16.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units).map(|c| c.unwrap_or('\u{FFFD}')).collect()
        }
        None => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A PDF text string for `s`: a literal when it is ASCII, UTF-16BE otherwise.
fn text(s: &str) -> Object {
    if s.is_ascii() {
        return Object::string_literal(s);
    }
    let mut bytes = vec![0xFE, 0xFF];
    bytes.extend(s.encode_utf16().flat_map(u16::to_be_bytes));
    Object::String(bytes, StringFormat::Hexadecimal)
}

/// `D:YYYYMMDDHHmmSS+00'00'`, as the Info dictionary writes dates.
pub fn pdf_date(t: Timestamp) -> String {
    let digits: String = t.to_string().chars().filter(char::is_ascii_digit).collect();
    format!("D:{digits}+00'00'")
}

/// A new Info dictionary and metadata stream, and the catalog pointing at them (the file's
/// own stay, unused). `pdfa` adds the PDF/A identification to XMP.
pub(super) fn apply(
    edits: &mut Edits<'_>,
    f: &Fields,
    pdfa: Option<PdfA>,
) -> Result<(), lopdf::Error> {
    let mut info = lopdf::Dictionary::new();
    let texts = [
        ("Title", &f.title),
        ("Author", &f.author),
        ("Subject", &f.subject),
        ("Keywords", &f.keywords),
    ];
    for (key, value) in texts {
        if let Some(v) = value {
            info.set(key, text(v));
        }
    }
    info.set("Creator", text(&f.creator));
    info.set("Producer", text(&f.producer));
    info.set("CreationDate", Object::string_literal(pdf_date(f.created)));
    info.set("ModDate", Object::string_literal(pdf_date(f.modified)));
    let info_id = edits.add(info);
    edits.trailer_mut().set("Info", info_id);

    // Uncompressed: PDF/A wants metadata readable by tools that know no PDF filters.
    let xmp = Stream::new(
        dictionary! { "Type" => "Metadata", "Subtype" => "XML" },
        xmp(f, pdfa).into_bytes(),
    )
    .with_compression(false);
    let xmp_id = edits.add(xmp);
    let catalog = edits.catalog_mut()?;
    catalog.set("Metadata", xmp_id);
    if f.title.is_some() {
        // Viewers show the title, not the file name (PDF/UA asks for it).
        catalog.set("ViewerPreferences", dictionary! { "DisplayDocTitle" => true });
    }
    Ok(())
}

/// The XMP packet for `f`.
pub fn xmp(f: &Fields, pdfa: Option<PdfA>) -> String {
    let mut body = String::from("<dc:format>application/pdf</dc:format>\n");
    let alt = |v: &str| {
        format!("<rdf:Alt><rdf:li xml:lang=\"x-default\">{}</rdf:li></rdf:Alt>", escape(v))
    };
    if let Some(t) = &f.title {
        body += &format!("<dc:title>{}</dc:title>\n", alt(t));
    }
    if let Some(a) = &f.author {
        body += &format!(
            "<dc:creator><rdf:Seq><rdf:li>{}</rdf:li></rdf:Seq></dc:creator>\n",
            escape(a)
        );
    }
    if let Some(s) = &f.subject {
        body += &format!("<dc:description>{}</dc:description>\n", alt(s));
    }
    if let Some(k) = &f.keywords {
        body += &format!("<pdf:Keywords>{}</pdf:Keywords>\n", escape(k));
    }
    body += &format!("<pdf:Producer>{}</pdf:Producer>\n", escape(&f.producer));
    body += &format!("<xmp:CreatorTool>{}</xmp:CreatorTool>\n", escape(&f.creator));
    body += &format!("<xmp:CreateDate>{}</xmp:CreateDate>\n", f.created);
    body += &format!("<xmp:ModifyDate>{}</xmp:ModifyDate>\n", f.modified);
    body += &format!("<xmp:MetadataDate>{}</xmp:MetadataDate>\n", f.modified);
    let mut namespaces = String::from(
        "xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\" \
         xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\"",
    );
    if let Some(level) = pdfa {
        namespaces += " xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\"";
        body += &format!(
            "<pdfaid:part>{}</pdfaid:part>\n<pdfaid:conformance>{}</pdfaid:conformance>\n",
            level.part(),
            level.conformance()
        );
    }
    format!(
        "<?xpacket begin=\"\u{FEFF}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n\
         <x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n\
         <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n\
         <rdf:Description rdf:about=\"\" {namespaces}>\n\
         {body}</rdf:Description>\n</rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>"
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            title: Some("Invoice <42> & \"co\"".into()),
            author: Some("Zoë".into()),
            subject: None,
            keywords: Some("a, b".into()),
            creator: CREATOR.into(),
            producer: PRODUCER.into(),
            created: Timestamp::parse("2024-12-15T10:30:00Z").unwrap(),
            modified: Timestamp::parse("2026-12-02T08:00:01Z").unwrap(),
        }
    }

    #[test]
    fn xmp_escapes_text_and_carries_the_pdfa_identification() {
        let x = xmp(&fields(), Some(PdfA::A2b));
        assert!(x.contains("Invoice &lt;42&gt; &amp; &quot;co&quot;"), "{x}");
        assert!(x.contains("<rdf:li>Zoë</rdf:li>"), "{x}");
        assert!(x.contains("<pdfaid:part>2</pdfaid:part>"));
        assert!(x.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(x.contains("<xmp:CreateDate>2024-12-15T10:30:00Z</xmp:CreateDate>"));
        assert!(!x.contains("dc:description"), "no subject, no element");
        assert!(!xmp(&fields(), None).contains("pdfaid"));
    }

    #[test]
    fn dates_and_text_strings_as_pdf_writes_them() {
        let t = Timestamp::parse("2024-12-15T10:30:05Z").unwrap();
        assert_eq!(pdf_date(t), "D:20241215103005+00'00'");
        assert_eq!(text("plain"), Object::string_literal("plain"));
        let Object::String(bytes, _) = text("Zoë") else { panic!() };
        assert_eq!(bytes, [0xFE, 0xFF, 0, b'Z', 0, b'o', 0, 0xEB]);
        assert_eq!(decode_text(&bytes), "Zoë");
        assert_eq!(decode_text(b"caf\xe9"), "café");
    }
}

//! The PDF as Chromium wrote it, read only where the metadata step looks: the trailer, and
//! single objects (the catalog, Info) through the cross-reference table, which gives each
//! object's offset without reading the others. What this costs does not grow with the file.
//!
//! Chromium (Skia) writes a classic cross-reference table (7.5.4) and no object streams; a
//! file with cross-reference streams, a hybrid or a damaged table is not read here (`None`),
//! and lopdf reads the whole of it instead.

use lopdf::{Dictionary, Object, ObjectId};

use super::syntax::Parser;

/// Sections of the `/Prev` chain followed at most.
const MAX_SECTIONS: usize = 32;
/// Where `startxref` is looked for: the end of the file.
const TAIL: usize = 1024;
/// A cross-reference entry: `nnnnnnnnnn ggggg n` and a two-byte line end.
const ENTRY: usize = 20;

/// The original file, its trailer and cross-reference sections, newest first.
pub(super) struct Original<'a> {
    bytes: &'a [u8],
    /// Where its last cross-reference section starts: the update's `/Prev`.
    pub(super) startxref: usize,
    pub(super) trailer: Dictionary,
    /// Its `/Size`: one past the highest object number.
    pub(super) size: u32,
    sections: Vec<Vec<Subsection>>,
}

/// `first count` and where its entries start.
struct Subsection {
    first: u32,
    count: u32,
    at: usize,
}

impl<'a> Original<'a> {
    /// `bytes`' structure, if it is a PDF with classic cross-reference tables that read.
    pub(super) fn read(bytes: &'a [u8]) -> Option<Self> {
        if !bytes.starts_with(b"%PDF-") {
            return None;
        }
        let startxref = startxref(bytes)?;
        let mut sections = Vec::new();
        let mut trailer = None;
        let mut next = Some(startxref);
        while let Some(at) = next {
            if sections.len() == MAX_SECTIONS {
                return None;
            }
            let (subsections, section_trailer) = section(bytes, at)?;
            // A hybrid file's other half is a cross-reference stream.
            if section_trailer.has(b"XRefStm") {
                return None;
            }
            next = match section_trailer.get(b"Prev") {
                Ok(prev) => Some(usize::try_from(prev.as_i64().ok()?).ok()?),
                Err(_) => None,
            };
            // Each section must start before the one it updates (no loop).
            if next.is_some_and(|prev| prev >= at) {
                return None;
            }
            sections.push(subsections);
            trailer.get_or_insert(section_trailer);
        }
        let trailer = trailer?;
        let size = u32::try_from(trailer.get(b"Size").ok()?.as_i64().ok()?).ok()?;
        Some(Self { bytes, startxref, trailer, size, sections })
    }

    /// Where an update goes after this file.
    pub(super) fn base(&self) -> super::write::Base {
        super::write::Base {
            prev: self.startxref,
            form: super::write::XrefForm::Table,
            size: self.size,
        }
    }

    /// Whether what the metadata step reads reads here: the catalog, and Info if there is
    /// one. Anything else is lopdf's to read.
    pub(super) fn readable(&self) -> bool {
        let dict = |key: &[u8]| {
            let id = self.trailer.get(key).and_then(Object::as_reference).ok()?;
            self.object(id).filter(|o| o.as_dict().is_ok())
        };
        dict(b"Root").is_some() && (!self.trailer.has(b"Info") || dict(b"Info").is_some())
    }

    /// Object `id` as the file has it now, if it is in use and reads.
    pub(super) fn object(&self, id: ObjectId) -> Option<Object> {
        for section in &self.sections {
            let Some(sub) = section.iter().find(|s| id.0 >= s.first && id.0 - s.first < s.count)
            else {
                continue;
            };
            let index = usize::try_from(id.0 - sub.first).ok()?;
            let entry = self.bytes.get(sub.at + index * ENTRY..sub.at + (index + 1) * ENTRY)?;
            let (offset, generation, in_use) = parse_entry(entry)?;
            if !in_use || generation != id.1 {
                return None;
            }
            return Parser::new(self.bytes, offset).indirect(id);
        }
        None
    }
}

/// The offset after the last `startxref`.
fn startxref(bytes: &[u8]) -> Option<usize> {
    let tail_start = bytes.len().saturating_sub(TAIL);
    let tail = &bytes[tail_start..];
    let keyword = b"startxref";
    let at = tail.windows(keyword.len()).rposition(|w| w == keyword)?;
    let mut p = Parser::new(bytes, tail_start + at + keyword.len());
    usize::try_from(p.unsigned()?).ok()
}

/// The subsections of the table at `at`, and the trailer after them.
fn section(bytes: &[u8], at: usize) -> Option<(Vec<Subsection>, Dictionary)> {
    let mut p = Parser::new(bytes, at);
    if !p.keyword(b"xref") {
        return None;
    }
    let mut subsections = Vec::new();
    loop {
        if p.keyword(b"trailer") {
            let Object::Dictionary(trailer) = p.object()? else { return None };
            return Some((subsections, trailer));
        }
        let first = u32::try_from(p.unsigned()?).ok()?;
        let count = u32::try_from(p.unsigned()?).ok()?;
        // The header's line end, then the entries.
        p.skip_space();
        let start = p.pos;
        let len = usize::try_from(count).ok()?.checked_mul(ENTRY)?;
        let entries = bytes.get(start..start.checked_add(len)?)?;
        // Entries of the wrong width (some writers' 19 bytes) would be misread: refused.
        if let (Some(first_entry), Some(last_entry)) =
            (entries.get(..ENTRY), entries.get(len.saturating_sub(ENTRY)..))
        {
            parse_entry(first_entry)?;
            parse_entry(last_entry)?;
        }
        subsections.push(Subsection { first, count, at: start });
        p.pos = start + len;
    }
}

/// (offset, generation, in use) of one 20-byte entry.
fn parse_entry(entry: &[u8]) -> Option<(usize, u16, bool)> {
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        let text = entry.get(range)?;
        if !text.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(text).ok()?.parse().ok()
    };
    let offset = usize::try_from(digits(0..10)?).ok()?;
    let generation = u16::try_from(digits(11..16)?).ok()?;
    let in_use = match entry.get(17)? {
        b'n' => true,
        b'f' => false,
        _ => return None,
    };
    let ends = matches!(entry.get(18..20)?, b" \n" | b" \r" | b"\r\n");
    (entry.get(10) == Some(&b' ') && entry.get(16) == Some(&b' ') && ends)
        .then_some((offset, generation, in_use))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small PDF with one update, as a writer of classic tables makes it.
    fn two_sections() -> Vec<u8> {
        let mut pdf = b"%PDF-1.4\n%\xd3\xeb\xe9\xe1\n".to_vec();
        let one = pdf.len();
        pdf.extend_from_slice(b"1 0 obj\n<</Title (first)>>\nendobj\n");
        let two = pdf.len();
        pdf.extend_from_slice(b"2 0 obj\n<</Type /Catalog /Pages 3 0 R>>\nendobj\n");
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!(
                "xref\n0 3\n0000000000 65535 f \n{one:010} 00000 n \n{two:010} 00000 n \n\
                 trailer\n<</Size 3 /Root 2 0 R /Info 1 0 R>>\nstartxref\n{xref}\n%%EOF\n"
            )
            .as_bytes(),
        );
        let again = pdf.len();
        pdf.extend_from_slice(b"1 0 obj\n<</Title (second)>>\nendobj\n");
        let xref2 = pdf.len();
        pdf.extend_from_slice(
            format!(
                "xref\n1 1\n{again:010} 00000 n \ntrailer\n<</Size 3 /Root 2 0 R /Info 1 0 R \
                 /Prev {xref}>>\nstartxref\n{xref2}\n%%EOF\n"
            )
            .as_bytes(),
        );
        pdf
    }

    #[test]
    fn objects_are_found_through_the_newest_section_first() {
        let pdf = two_sections();
        let original = Original::read(&pdf).unwrap();
        assert_eq!(original.size, 3);
        let title = original.object((1, 0)).unwrap();
        assert_eq!(title.as_dict().unwrap().get(b"Title").unwrap().as_str().unwrap(), b"second");
        let catalog = original.object((2, 0)).unwrap();
        assert_eq!(catalog.as_dict().unwrap().get(b"Pages").unwrap(), &Object::Reference((3, 0)));
        assert_eq!(original.object((2, 1)), None, "another generation");
        assert_eq!(original.object((0, 0)), None, "free");
        assert_eq!(original.object((9, 0)), None, "not in the file");
    }

    #[test]
    fn a_file_this_reader_does_not_know_is_left_to_lopdf() {
        let pdf = two_sections();
        assert!(Original::read(&pdf[1..]).is_none(), "no header");
        let at = pdf.windows(9).rposition(|w| w == b"startxref").unwrap();
        let mut astray = pdf[..at].to_vec();
        astray.extend_from_slice(b"startxref\n20\n%%EOF\n");
        assert!(Original::read(&astray).is_none(), "startxref at no table");
        // Cut after its first revision: the file as it was then.
        let first = pdf.windows(5).position(|w| w == b"%%EOF").unwrap() + 6;
        let then = Original::read(&pdf[..first]).unwrap().object((1, 0)).unwrap();
        assert_eq!(then.as_dict().unwrap().get(b"Title").unwrap().as_str().unwrap(), b"first");
        // An entry of 19 bytes.
        let narrow = String::from_utf8_lossy(&pdf).replacen(" 00000 n \n", " 00000 n\n", 1);
        assert!(Original::read(narrow.as_bytes()).is_none());
        // A /Prev that points forward (or at itself) would loop.
        let looped = String::from_utf8_lossy(&pdf).replacen("/Prev ", "/Prev 9", 1);
        assert!(Original::read(looped.as_bytes()).is_none());
        for n in 0..pdf.len() {
            // Any truncation: an answer or none, never a panic.
            let _ = Original::read(&pdf[..n]).map(|o| o.object((1, 0)));
        }
    }
}

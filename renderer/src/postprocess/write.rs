//! Writing what the steps changed: appended to Chromium's file as an incremental update
//! (ISO 32000-1, 7.5.6), which leaves every byte before it as it was; or, for a document that
//! has no file of its own yet (a batch's, cut from its group's PDF), the whole document.

use std::collections::BTreeMap;

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::syntax;

/// The cross-reference form of the file an update is appended to; the update keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum XrefForm {
    Table,
    Stream,
}

/// The file an update goes after.
#[derive(Debug, Clone, Copy)]
pub(super) struct Base {
    /// Its last cross-reference section (`startxref`): the update's `/Prev`.
    pub(super) prev: usize,
    pub(super) form: XrefForm,
    /// Its `/Size`.
    pub(super) size: u32,
}

/// Trailer entries that describe one cross-reference section, not the document.
const SECTION_KEYS: [&[u8]; 9] =
    [b"Prev", b"XRefStm", b"Size", b"Type", b"W", b"Index", b"Filter", b"DecodeParms", b"Length"];

/// Appends to `pdf` (the file `base` describes) `objects`, new or replacing those of the same
/// number, and a cross-reference section and trailer for them that points back at the file's.
/// `trailer` is the document's whole trailer (7.5.6: the update's repeats every entry).
pub(super) fn append(
    pdf: &mut Vec<u8>,
    base: Base,
    objects: &BTreeMap<ObjectId, Object>,
    trailer: &Dictionary,
) {
    // Written apart, then added in one go: the file grows (and is moved, if it must) once.
    let mut update = Vec::with_capacity(4096);
    if !pdf.ends_with(b"\n") && !pdf.ends_with(b"\r") {
        update.push(b'\n');
    }
    let at = |update: &Vec<u8>| pdf.len() + update.len();
    let mut offsets: Vec<(ObjectId, usize)> = Vec::with_capacity(objects.len() + 1);
    for (id, object) in objects {
        offsets.push((*id, at(&update)));
        indirect(&mut update, *id, object);
    }
    let highest = objects.keys().map(|id| id.0).max().unwrap_or(0);
    let mut size = base.size.max(highest.saturating_add(1));
    let mut trailer = section_trailer(trailer);
    trailer.set("Prev", i64::try_from(base.prev).unwrap_or(i64::MAX));
    let xref_at = at(&update);
    match base.form {
        XrefForm::Table => {
            trailer.set("Size", i64::from(size));
            table(&mut update, &offsets);
            update.extend_from_slice(b"trailer\n");
            syntax::write(&mut update, &Object::Dictionary(trailer));
            update.push(b'\n');
        }
        XrefForm::Stream => {
            // The stream is an object too, the update's last.
            let id = (size, 0);
            size += 1;
            offsets.push((id, xref_at));
            xref_stream(&mut update, id, &offsets, size, trailer);
        }
    }
    update.extend_from_slice(b"startxref\n");
    syntax::integer(&mut update, i64::try_from(xref_at).unwrap_or(i64::MAX));
    update.extend_from_slice(b"\n%%EOF\n");
    pdf.extend_from_slice(&update);
}

/// `doc` as a file of its own: its objects in number order, a cross-reference table, its
/// trailer. Numbers are written as Chromium writes them ([`syntax::real`]).
pub(super) fn document(doc: &Document) -> Vec<u8> {
    let streams: usize = doc
        .objects
        .values()
        .map(|o| if let Object::Stream(s) = o { s.content.len() } else { 0 })
        .sum();
    let mut pdf = Vec::with_capacity(streams + doc.objects.len() * 160 + 1024);
    pdf.extend_from_slice(b"%PDF-");
    pdf.extend_from_slice(doc.version.as_bytes());
    // Chromium's: four bytes over 127 say the file is binary (PDF/A asks for them).
    pdf.extend_from_slice(b"\n%\xd3\xeb\xe9\xe1\n");
    let mut offsets = Vec::with_capacity(doc.objects.len());
    for (id, object) in &doc.objects {
        offsets.push((*id, pdf.len()));
        indirect(&mut pdf, *id, object);
    }
    let size = doc.objects.keys().map(|id| id.0).max().unwrap_or(0).saturating_add(1);
    let mut trailer = section_trailer(&doc.trailer);
    trailer.set("Size", i64::from(size));
    let xref_at = pdf.len();
    table(&mut pdf, &offsets);
    pdf.extend_from_slice(b"trailer\n");
    syntax::write(&mut pdf, &Object::Dictionary(trailer));
    pdf.extend_from_slice(b"\nstartxref\n");
    syntax::integer(&mut pdf, i64::try_from(xref_at).unwrap_or(i64::MAX));
    pdf.extend_from_slice(b"\n%%EOF\n");
    pdf
}

fn indirect(pdf: &mut Vec<u8>, id: ObjectId, object: &Object) {
    syntax::integer(pdf, i64::from(id.0));
    pdf.push(b' ');
    syntax::integer(pdf, i64::from(id.1));
    pdf.extend_from_slice(b" obj\n");
    syntax::write(pdf, object);
    pdf.extend_from_slice(b"\nendobj\n");
}

/// The document's entries of `trailer`, without those of its cross-reference section.
fn section_trailer(trailer: &Dictionary) -> Dictionary {
    let mut out = Dictionary::new();
    for (key, value) in trailer.iter() {
        if !SECTION_KEYS.contains(&key.as_slice()) {
            out.set(key.clone(), value.clone());
        }
    }
    out
}

/// Runs of consecutive numbers among `offsets` (sorted by number), with entry 0, the head of
/// the free list.
fn runs(offsets: &[(ObjectId, usize)]) -> Vec<Vec<(u32, u16, usize, bool)>> {
    let mut runs: Vec<Vec<(u32, u16, usize, bool)>> = vec![vec![(0, 65535, 0, false)]];
    for ((number, generation), offset) in offsets {
        let entry = (*number, *generation, *offset, true);
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| last.0 + 1 == *number) => run.push(entry),
            _ => runs.push(vec![entry]),
        }
    }
    runs
}

/// `xref` and its subsections, 20 bytes an entry as Chromium writes them.
fn table(pdf: &mut Vec<u8>, offsets: &[(ObjectId, usize)]) {
    pdf.extend_from_slice(b"xref\n");
    for run in runs(offsets) {
        let first = run.first().map_or(0, |e| e.0);
        pdf.extend_from_slice(format!("{first} {}\n", run.len()).as_bytes());
        for (_, generation, offset, in_use) in run {
            let kind = if in_use { 'n' } else { 'f' };
            pdf.extend_from_slice(format!("{offset:010} {generation:05} {kind} \n").as_bytes());
        }
    }
}

/// A cross-reference stream (7.5.8), uncompressed: the update of a file that has them.
fn xref_stream(
    pdf: &mut Vec<u8>,
    id: ObjectId,
    offsets: &[(ObjectId, usize)],
    size: u32,
    mut dict: Dictionary,
) {
    let highest = offsets.iter().map(|(_, o)| *o).max().unwrap_or(0);
    // Bytes an offset needs.
    let width = (1..=8usize).find(|w| *w == 8 || highest >> (8 * w) == 0).unwrap_or(8);
    let mut index = Vec::new();
    let mut data = Vec::with_capacity(offsets.len() * (width + 3));
    // Entry 0 is the free list's head, which the file's own section keeps.
    for run in runs(offsets).into_iter().skip(1) {
        index.push(Object::Integer(i64::from(run[0].0)));
        index.push(Object::Integer(i64::try_from(run.len()).unwrap_or(i64::MAX)));
        for (_, generation, offset, _) in run {
            data.push(1);
            data.extend_from_slice(&(offset as u64).to_be_bytes()[8 - width..]);
            data.extend_from_slice(&generation.to_be_bytes());
        }
    }
    dict.set("Type", Object::Name(b"XRef".to_vec()));
    dict.set("Size", i64::from(size));
    dict.set("Index", index);
    let w = [1, i64::try_from(width).unwrap_or(8), 2];
    dict.set("W", w.iter().map(|w| Object::Integer(*w)).collect::<Vec<_>>());
    indirect(pdf, id, &Object::Stream(lopdf::Stream::new(dict, data)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::dictionary;

    #[test]
    fn runs_group_consecutive_numbers_after_the_free_head() {
        let offsets = [((3, 0), 30), ((4, 0), 40), ((9, 2), 90)];
        let runs = runs(&offsets);
        assert_eq!(
            runs,
            [
                vec![(0, 65535, 0, false)],
                vec![(3, 0, 30, true), (4, 0, 40, true)],
                vec![(9, 2, 90, true)]
            ]
        );
        let mut pdf = Vec::new();
        table(&mut pdf, &[((1, 0), 15)]);
        assert_eq!(pdf, b"xref\n0 2\n0000000000 65535 f \n0000000015 00000 n \n");
    }

    #[test]
    fn an_update_repeats_the_trailer_and_points_back() {
        let mut pdf = b"%PDF-1.4\nsome objects".to_vec();
        let objects = BTreeMap::from([((7, 0), Object::Integer(1))]);
        let trailer = dictionary! { "Size" => 5, "Root" => (1, 0), "Prev" => 3, "W" => 1 };
        let base = Base { prev: 9, form: XrefForm::Table, size: 5 };
        append(&mut pdf, base, &objects, &trailer);
        let text = String::from_utf8(pdf).unwrap();
        assert!(text.starts_with("%PDF-1.4\nsome objects\n7 0 obj\n1\nendobj\nxref\n"), "{text}");
        assert!(text.contains("0 1\n0000000000 65535 f \n7 1\n0000000022 00000 n \n"), "{text}");
        assert!(text.contains("<</Root 1 0 R\n/Prev 9\n/Size 8>>"), "{text}");
        assert!(text.ends_with("startxref\n39\n%%EOF\n"), "{text}");
    }
}

//! A document cut from a group keeps only its own glyphs ([`super::split`]). Chromium subsets
//! each font once for the whole print, so the font a document's pages use also holds the
//! glyphs, widths and ToUnicode entries of every character the group's other documents used.
//! Each font a document's pages show text with is subset again to the glyphs those pages show
//! (`subsetter`), its widths and ToUnicode map cut to them. Chromium writes text as Type 0
//! fonts over TrueType outlines (CIDFontType2, Identity); a font of any other kind, or text
//! this module cannot follow, fails the split, and the group's documents render one by one.

use std::collections::{hash_map::Entry, BTreeMap, BTreeSet, HashMap, HashSet};

use super::content::Operand;
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream};
use subsetter::GlyphRemapper;

/// How deep form XObjects may nest inside one another.
const MAX_DEPTH: usize = 16;

/// What each font of the group PDF holds, read once for all the documents cut from it
/// (by the font's object id in the group PDF: [`keep_own`] runs before renumbering).
#[derive(Default)]
pub(super) struct Fonts {
    read: HashMap<ObjectId, Font>,
}

/// A Type 0 font's program, widths and ToUnicode map, decoded.
struct Font {
    descendant: ObjectId,
    descriptor: ObjectId,
    file: ObjectId,
    program: Vec<u8>,
    widths: BTreeMap<u16, Object>,
    to_unicode: Option<(ObjectId, BTreeMap<u16, Vec<u8>>)>,
}

/// Subsets every font of `doc` (objects numbered as in the group PDF) to the glyphs its pages
/// show.
pub(super) fn keep_own(doc: &mut Document, fonts: &mut Fonts) -> Result<(), String> {
    let mut shown: HashMap<ObjectId, BTreeSet<u16>> = HashMap::new();
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    let mut walk = Walk { doc: &*doc, shown: &mut shown, seen: HashSet::new() };
    for page in pages {
        let resources = page_resources(walk.doc, page)?;
        let content = walk.doc.get_page_content(page);
        walk.content(&content, &resources, 0)?;
        walk.annotations(page)?;
    }
    // A font no walked stream shows text with (none is known to exist) is not left whole.
    let ids: Vec<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, o)| o.as_dict().is_ok_and(|d| is_type(d, b"Font") && !is_descendant(d)))
        .map(|(id, _)| *id)
        .collect();
    let mut files = HashSet::new();
    for id in ids {
        let cids = shown.remove(&id).unwrap_or_default();
        let font = match fonts.read.entry(id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(new) => new.insert(read_font(doc, id)?),
        };
        if !files.insert(font.file) {
            return Err(String::from("a font of a kind not subset again (a program shared)"));
        }
        subset_font(doc, font, &cids)?;
    }
    Ok(())
}

/// Content streams walked for the glyphs they show, per font.
struct Walk<'a> {
    doc: &'a Document,
    shown: &'a mut HashMap<ObjectId, BTreeSet<u16>>,
    /// Form XObjects, patterns and appearance streams already walked.
    seen: HashSet<ObjectId>,
}

impl Walk<'_> {
    fn content(
        &mut self,
        bytes: &[u8],
        resources: &Dictionary,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(String::from("form XObjects nest too deep"));
        }
        let mut fonts: Vec<Option<ObjectId>> = vec![None];
        super::content::operations(bytes, |op, operands| {
            let current = fonts.last().copied().flatten();
            match op {
                b"q" => fonts.push(current),
                b"Q" if fonts.len() > 1 => {
                    fonts.pop();
                }
                b"Tf" => {
                    let font = name(operands.first())
                        .map(|n| self.named(resources, b"Font", n))
                        .transpose()?;
                    if let Some(top) = fonts.last_mut() {
                        *top = font;
                    }
                }
                b"Tj" | b"'" | b"\"" | b"TJ" => {
                    let font = current.ok_or("text shown with no font")?;
                    let cids = self.shown.entry(font).or_default();
                    for operand in operands {
                        let strings = match operand {
                            Operand::String(s) => std::slice::from_ref(s),
                            Operand::Array(items) => items.as_slice(),
                            _ => &[],
                        };
                        for s in strings {
                            if s.len() % 2 != 0 {
                                return Err(String::from("text in a one-byte encoding"));
                            }
                            cids.extend(
                                s.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])),
                            );
                        }
                    }
                }
                b"Do" => {
                    if let Some(n) = name(operands.first()) {
                        let id = self.named(resources, b"XObject", n)?;
                        self.form(id, resources, depth)?;
                    }
                }
                // A tiling pattern is a content stream of its own.
                b"scn" | b"SCN" => {
                    if let Some(id) = name(operands.last())
                        .and_then(|n| self.named(resources, b"Pattern", n).ok())
                    {
                        self.form(id, resources, depth)?;
                    }
                }
                _ => {}
            }
            Ok(())
        })
    }

    /// A form XObject's or tiling pattern's content, with its own resources (or `outer`).
    fn form(&mut self, id: ObjectId, outer: &Dictionary, depth: usize) -> Result<(), String> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) else {
            return Ok(()); // a shading pattern: no content
        };
        let is_form =
            stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Form");
        let is_tiling =
            stream.dict.get(b"PatternType").and_then(Object::as_i64).is_ok_and(|t| t == 1);
        if !is_form && !is_tiling {
            return Ok(()); // an image
        }
        let resources = match stream.dict.get(b"Resources") {
            Ok(r) => self.dict(r)?.clone(),
            Err(_) => outer.clone(),
        };
        let bytes = stream.decompressed_content().map_err(|e| e.to_string())?;
        self.content(&bytes, &resources, depth + 1)
    }

    /// The appearance streams of `page`'s annotations.
    fn annotations(&mut self, page: ObjectId) -> Result<(), String> {
        let doc = self.doc;
        let annots = doc.get_page_annotations(page).map_err(|e| e.to_string())?;
        let mut streams = Vec::new();
        for annot in annots {
            let Ok(appearance) = annot.get(b"AP") else { continue };
            for (_, state) in self.dict(appearance)?.iter() {
                match state {
                    Object::Reference(id) => streams.push(*id),
                    Object::Dictionary(states) => {
                        streams.extend(states.iter().filter_map(|(_, s)| s.as_reference().ok()));
                    }
                    _ => {}
                }
            }
        }
        for id in streams {
            self.form(id, &Dictionary::new(), 0)?;
        }
        Ok(())
    }

    /// `resources`' entry `name` of the category `kind` (Font, XObject, Pattern).
    fn named(&self, resources: &Dictionary, kind: &[u8], name: &[u8]) -> Result<ObjectId, String> {
        let category = resources.get(kind).map_err(|_| "a resource is missing")?;
        let category = self.dict(category)?;
        category.get(name).and_then(Object::as_reference).map_err(|_| {
            format!("resource {} is missing or not indirect", String::from_utf8_lossy(name))
        })
    }

    fn dict<'b>(&'b self, object: &'b Object) -> Result<&'b Dictionary, String> {
        let (_, object) = self.doc.dereference(object).map_err(|e| e.to_string())?;
        object.as_dict().map_err(|_| String::from("not a dictionary"))
    }
}

fn name(operand: Option<&Operand>) -> Option<&[u8]> {
    match operand {
        Some(Operand::Name(n)) => Some(n),
        _ => None,
    }
}

fn page_resources(doc: &Document, page: ObjectId) -> Result<Dictionary, String> {
    let (direct, ids) = doc.get_page_resources(page).map_err(|e| e.to_string())?;
    if let Some(d) = direct {
        return Ok(d.clone());
    }
    match ids.first() {
        Some(id) => doc.get_dictionary(*id).cloned().map_err(|e| e.to_string()),
        None => Ok(Dictionary::new()),
    }
}

fn is_type(d: &Dictionary, kind: &[u8]) -> bool {
    d.get(b"Type").and_then(Object::as_name).is_ok_and(|t| t == kind)
}

/// A CIDFont, reached through its Type 0 font.
fn is_descendant(d: &Dictionary) -> bool {
    d.get(b"Subtype")
        .and_then(Object::as_name)
        .is_ok_and(|s| s == b"CIDFontType2" || s == b"CIDFontType0")
}

/// `font`, a Type 0 font over a CIDFontType2 with the identity CID-to-glyph map, read.
fn read_font(doc: &Document, font: ObjectId) -> Result<Font, String> {
    let unsupported = |what: &str| Err(format!("a font of a kind not subset again ({what})"));
    let dict = doc.get_dictionary(font).map_err(|e| e.to_string())?;
    if dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Type0".as_slice()) {
        return unsupported("not Type 0");
    }
    if dict.get(b"Encoding").and_then(Object::as_name).ok() != Some(b"Identity-H".as_slice()) {
        return unsupported("not Identity-H");
    }
    let descendant = match dict.get(b"DescendantFonts") {
        Ok(Object::Array(items)) if items.len() == 1 => items[0].as_reference().ok(),
        _ => None,
    }
    .ok_or("a Type 0 font without one indirect descendant")?;
    let cid_font = doc.get_dictionary(descendant).map_err(|e| e.to_string())?;
    if cid_font.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"CIDFontType2".as_slice()) {
        return unsupported("not CIDFontType2");
    }
    match cid_font.get(b"CIDToGIDMap") {
        Err(_) => {}
        Ok(m) if m.as_name().ok() == Some(b"Identity".as_slice()) => {}
        Ok(_) => return unsupported("a CID-to-glyph map of its own"),
    }
    let descriptor = cid_font
        .get(b"FontDescriptor")
        .and_then(Object::as_reference)
        .map_err(|_| "a CIDFont without a descriptor")?;
    let file = doc
        .get_dictionary(descriptor)
        .and_then(|d| d.get(b"FontFile2"))
        .and_then(Object::as_reference)
        .map_err(|_| "a CIDFont without an embedded TrueType program")?;
    let program = doc
        .get_object(file)
        .and_then(Object::as_stream)
        .and_then(Stream::decompressed_content)
        .map_err(|e| format!("the font program: {e}"))?;
    let widths = cid_font.get(b"W").ok().map(|w| widths(doc, w)).unwrap_or_default();
    let to_unicode = match dict.get(b"ToUnicode").and_then(Object::as_reference) {
        Ok(id) => {
            let cmap = doc
                .get_object(id)
                .and_then(Object::as_stream)
                .and_then(Stream::decompressed_content)
                .map_err(|e| format!("the ToUnicode map: {e}"))?;
            Some((id, to_unicode_entries(&cmap)?))
        }
        Err(_) => None,
    };
    Ok(Font { descendant, descriptor, file, program, widths, to_unicode })
}

/// `font` in `doc` subset to `cids`; its widths and ToUnicode map cut to them.
fn subset_font(doc: &mut Document, font: &Font, cids: &BTreeSet<u16>) -> Result<(), String> {
    // The identity map: a CID is the glyph's id in the program.
    let mut remapper = GlyphRemapper::new();
    for cid in cids {
        remapper.remap(*cid);
    }
    let subset =
        subsetter::subset(&font.program, 0, &remapper).map_err(|e| format!("subset: {e}"))?;
    let length = i64::try_from(subset.len()).unwrap_or(i64::MAX);
    doc.objects.insert(font.file, deflated(dictionary! { "Length1" => length }, &subset));

    // New glyph ids: the CIDs in the content streams stay, a map leads to the glyphs.
    let last = cids.iter().next_back().copied().unwrap_or(0);
    let mut map = vec![0u8; 2 * (usize::from(last) + 1)];
    for cid in cids {
        let gid = remapper.get(*cid).unwrap_or(0);
        let at = 2 * usize::from(*cid);
        map[at..at + 2].copy_from_slice(&gid.to_be_bytes());
    }
    let map = doc.add_object(deflated(Dictionary::new(), &map));

    let mut cid_font = doc.get_dictionary(font.descendant).map_err(|e| e.to_string())?.clone();
    cid_font.set("CIDToGIDMap", map);
    cid_font.set(
        "W",
        Object::Array(
            cids.iter()
                .filter_map(|cid| {
                    let w = font.widths.get(cid)?;
                    Some([Object::Integer(i64::from(*cid)), Object::Array(vec![w.clone()])])
                })
                .flatten()
                .collect(),
        ),
    );
    doc.objects.insert(font.descendant, Object::Dictionary(cid_font));
    if let Ok(Object::Dictionary(d)) = doc.get_object_mut(font.descriptor) {
        // The glyphs present, for PDF/A-1: no longer true, and optional since.
        d.remove(b"CIDSet");
    }

    if let Some((id, mapped)) = &font.to_unicode {
        let kept: Vec<(u16, &[u8])> = cids
            .iter()
            .filter_map(|cid| mapped.get(cid).map(|dst| (*cid, dst.as_slice())))
            .collect();
        doc.objects.insert(*id, deflated(Dictionary::new(), to_unicode_cmap(&kept).as_bytes()));
    }
    Ok(())
}

/// A Flate stream of `content`, at the fastest level. Every document's fonts are deflated
/// again: at lopdf's level (the best) that cost more than the rest of the split together,
/// at zlib's default still a third of it. The fastest makes a grouped invoice 2.7% larger
/// than the default would, still no larger than the invoice alone (renderer/tests/batch.rs
/// holds every grouped document within 5% of its size alone).
fn deflated(mut dict: Dictionary, content: &[u8]) -> Object {
    use std::io::Write as _;
    let capacity = content.len() / 2;
    let mut encoder =
        flate2::write::ZlibEncoder::new(Vec::with_capacity(capacity), flate2::Compression::fast());
    match encoder.write_all(content).and_then(|()| encoder.finish()) {
        Ok(compressed) => {
            dict.set("Filter", "FlateDecode");
            Object::Stream(Stream::new(dict, compressed))
        }
        // Writing to memory does not fail; were it to, the stream goes uncompressed.
        Err(_) => Object::Stream(Stream::new(dict, content.to_vec())),
    }
}

/// The widths of `w` (`[c [w1 w2 …] c_first c_last w …]`) by CID.
fn widths(doc: &Document, w: &Object) -> BTreeMap<u16, Object> {
    let items = match doc.dereference(w) {
        Ok((_, Object::Array(items))) => items.as_slice(),
        _ => &[],
    };
    let cid = |o: &Object| o.as_i64().ok().and_then(|v| u16::try_from(v).ok());
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < items.len() {
        let Some(first) = cid(&items[i]) else { break };
        match items.get(i + 1) {
            Some(Object::Array(ws)) => {
                for (k, w) in ws.iter().enumerate() {
                    if let Some(c) = u16::try_from(k).ok().and_then(|k| first.checked_add(k)) {
                        out.insert(c, w.clone());
                    }
                }
                i += 2;
            }
            Some(last) => {
                let (Some(last), Some(w)) = (cid(last), items.get(i + 2)) else { break };
                for c in first..=last {
                    out.insert(c, w.clone());
                }
                i += 3;
            }
            None => break,
        }
    }
    out
}

/// The entries of a ToUnicode CMap (`bfchar` and `bfrange`, both forms), by two-byte code.
fn to_unicode_entries(cmap: &[u8]) -> Result<BTreeMap<u16, Vec<u8>>, String> {
    let text = String::from_utf8_lossy(cmap);
    let hex = |s: &str| -> Option<Vec<u8>> {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect()
    };
    let code = |s: &str| -> Option<u16> {
        let b = hex(s)?;
        (b.len() == 2).then(|| u16::from_be_bytes([b[0], b[1]]))
    };
    let tokens = |section: &str| -> Vec<String> {
        section
            .replace('[', " [ ")
            .replace(']', " ] ")
            .replace("><", "> <")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let bad = || String::from("a ToUnicode map in a form not read");
    let mut out = BTreeMap::new();
    for block in text.split("beginbfchar").skip(1) {
        let body = block.split("endbfchar").next().unwrap_or_default();
        let t = tokens(body);
        for pair in t.chunks(2) {
            let [src, dst] = pair else { return Err(bad()) };
            out.insert(code(src).ok_or_else(bad)?, hex(dst).ok_or_else(bad)?);
        }
    }
    for block in text.split("beginbfrange").skip(1) {
        let body = block.split("endbfrange").next().unwrap_or_default();
        let t = tokens(body);
        let mut i = 0;
        while i < t.len() {
            let (lo, hi) = (
                code(&t[i]).ok_or_else(bad)?,
                code(t.get(i + 1).ok_or_else(bad)?).ok_or_else(bad)?,
            );
            if t.get(i + 2).map(String::as_str) == Some("[") {
                let mut k = i + 3;
                let mut c = lo;
                while t.get(k).map(String::as_str) != Some("]") {
                    out.insert(c, hex(t.get(k).ok_or_else(bad)?).ok_or_else(bad)?);
                    c = c.checked_add(1).ok_or_else(bad)?;
                    k += 1;
                }
                i = k + 1;
            } else {
                let mut dst = hex(t.get(i + 2).ok_or_else(bad)?).ok_or_else(bad)?;
                for c in lo..=hi {
                    out.insert(c, dst.clone());
                    // The last byte counts up along the range.
                    if let Some(b) = dst.last_mut() {
                        *b = b.wrapping_add(1);
                    }
                }
                i += 3;
            }
        }
    }
    Ok(out)
}

/// A ToUnicode CMap of `entries`.
fn to_unicode_cmap(entries: &[(u16, &[u8])]) -> String {
    let mut out = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    for chunk in entries.chunks(100) {
        out.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (cid, dst) in chunk {
            let dst: String = dst.iter().map(|b| format!("{b:02X}")).collect();
            out.push_str(&format!("<{cid:04X}> <{dst}>\n"));
        }
        out.push_str("endbfchar\n");
    }
    out.push_str("endcmap\nCMapName currentdict /CMapResource defineresource pop\nend\nend\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_unicode_maps_are_read_in_every_form_and_written_back() {
        let cmap = b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
            2 beginbfchar\n<0003> <0020>\n<0024><0041>\nendbfchar\n\
            2 beginbfrange\n<0044> <0046> <0061>\n<0050> <0051> [<0066006C> <0078>]\nendbfrange";
        let m = to_unicode_entries(cmap).unwrap();
        let s = |c: u16| {
            String::from_utf16(
                &m[&c].chunks(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        assert_eq!(
            [s(3), s(0x24), s(0x44), s(0x45), s(0x46), s(0x50), s(0x51)],
            [" ", "A", "a", "b", "c", "fl", "x"]
        );
        assert_eq!(m.len(), 7);
        let written = to_unicode_cmap(&[(0x24, &m[&0x24]), (0x50, &m[&0x50])]);
        let again = to_unicode_entries(written.as_bytes()).unwrap();
        assert_eq!(again.keys().copied().collect::<Vec<_>>(), [0x24, 0x50]);
        assert_eq!(again[&0x50], m[&0x50]);
        assert!(to_unicode_entries(b"beginbfchar <00> endbfchar").is_err());
    }

    #[test]
    fn widths_are_read_in_both_forms() {
        let doc = Document::with_version("1.7");
        let w = Object::Array(vec![
            1.into(),
            Object::Array(vec![500.into(), 600.into()]),
            10.into(),
            12.into(),
            250.into(),
        ]);
        let got: Vec<(u16, i64)> =
            widths(&doc, &w).into_iter().map(|(c, w)| (c, w.as_i64().unwrap())).collect();
        assert_eq!(got, [(1, 500), (2, 600), (10, 250), (11, 250), (12, 250)]);
    }
}

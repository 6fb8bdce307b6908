//! The post-processing stage: what happens to Chromium's PDF before it leaves the renderer,
//! for sync renders and jobs alike, under a deadline of its own (`--postprocess-timeout`).
//!
//! Steps, in order: [`metadata`] (every PDF: the Info dictionary and XMP, `tailpdf` as
//! producer), [`pdfa`] (`pdfOptions.pdfa`), [`encrypt`] (`pdfOptions.password`, by qpdf).
//! The options were checked by `tailpdf_shared::postprocess` at the edge.
//!
//! The PDF stays Chromium's: the first two steps collect what they change ([`Edits`]: a new
//! Info dictionary and XMP stream, the catalog pointing at them, PDF/A's additions), and that
//! is appended to Chromium's file as an incremental update (ISO 32000-1, 7.5.6, [`write`]).
//! Every byte Chromium wrote stays where it was (PDF/A also raises the header's version
//! digit, in place), so readers see the numbers Chromium wrote: lopdf, which wrote the file
//! again before, spelled every number outside the page content as a shorter `f32`
//! (`595.91998` became `595.92`), and rasterised pages moved. The metadata step reads only the
//! trailer, the catalog and Info, through the cross-reference table ([`xref`]): its cost does
//! not grow with the file. PDF/A reads all of it (it looks at every annotation and image).
//! Encryption (qpdf) writes the file anew: it comes last, and only when asked for.
//!
//! A batch's document, cut from its group's PDF (`engine::split`), has no file of its own:
//! it comes parsed and is written whole, its numbers spelled as Chromium spelled them
//! ([`syntax::real`]) and its streams' data as they were.

mod encrypt;
pub mod metadata;
mod pdfa;
pub(crate) mod syntax;
mod write;
mod xref;

use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use lopdf::{Dictionary, Document, Object, ObjectId};

use tailpdf_shared::{
    pdf_options::PdfOptions,
    postprocess::{Metadata, PdfA},
    Timestamp,
};

use crate::error::RenderError;

/// The stage's settings (from the engine's flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Deadline of the whole stage.
    pub timeout: Duration,
    /// The qpdf executable.
    pub qpdf: PathBuf,
}

/// One step that ran, and what it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub took: Duration,
}

/// A PDF for the stage: Chromium's bytes, or a document already parsed (a batch document
/// cut from its group's PDF), which is then not written and parsed again in between.
pub enum Pdf {
    Bytes(Vec<u8>),
    Parsed(Box<lopdf::Document>),
}

/// Runs every step `options` asks for on `pdf` within `cfg.timeout`.
pub async fn run(
    pdf: impl Into<Pdf>,
    options: &PdfOptions,
    cfg: &Config,
) -> Result<(Vec<u8>, Vec<Step>), RenderError> {
    let pdf = pdf.into();
    let work = async {
        let mut steps = Vec::with_capacity(3);
        let (metadata, pdfa, now) = (options.metadata.clone(), options.pdfa(), now()?);
        // lopdf is synchronous and CPU-bound: off the async threads.
        let (pdf, edits) =
            tokio::task::spawn_blocking(move || edit(pdf, metadata.as_ref(), pdfa, now))
                .await
                .map_err(|e| failed("metadata", e))??;
        steps.extend(edits);
        let pdf = match &options.password {
            Some(password) => {
                let started = Instant::now();
                let pdf = encrypt::encrypt(&pdf, password, &cfg.qpdf).await?;
                steps.push(Step { name: "encrypt", took: started.elapsed() });
                pdf
            }
            None => pdf,
        };
        Ok((pdf, steps))
    };
    tokio::time::timeout(cfg.timeout, work).await.unwrap_or_else(|_| {
        Err(RenderError::PostProcess(format!(
            "post-processing took longer than {:?}; the limit is --postprocess-timeout",
            cfg.timeout
        )))
    })
}

impl From<Vec<u8>> for Pdf {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Bytes(bytes)
    }
}

/// The steps that edit the document, before encryption.
fn edit(
    pdf: Pdf,
    given: Option<&Metadata>,
    pdfa: Option<PdfA>,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<Step>), RenderError> {
    match pdf {
        Pdf::Bytes(bytes) => edit_file(bytes, given, pdfa, now),
        Pdf::Parsed(doc) => edit_parsed(*doc, given, pdfa, now),
    }
}

/// Chromium's file with the steps' changes appended. What the metadata step reads of it,
/// and the update's writing, count as its time; PDF/A's reading of the whole file as PDF/A's.
fn edit_file(
    mut pdf: Vec<u8>,
    given: Option<&Metadata>,
    pdfa: Option<PdfA>,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<Step>), RenderError> {
    let started = Instant::now();
    let original = xref::Original::read(&pdf).filter(xref::Original::readable);
    // A file the reader does not know (cross-reference streams, a damaged table, syntax it
    // refuses): lopdf reads all of it.
    let loaded = match original {
        Some(_) => None,
        None => Some(load(&pdf)?),
    };
    let (source, base) = match (&original, &loaded) {
        (Some(o), _) => (Source::File(o), Some(o.base())),
        (None, Some(doc)) => (Source::Parsed(doc), appendable(doc, &pdf)),
        (None, None) => return Err(failed("metadata", "the PDF could not be read")),
    };
    let mut edits = Edits::new(source);
    apply_metadata(&mut edits, given, pdfa, now)?;
    let pdfa_took = match pdfa {
        Some(_) => {
            let t = Instant::now();
            let whole;
            let doc = match &loaded {
                Some(doc) => doc,
                None => {
                    whole = load(&pdf).map_err(|e| failed("pdfa", e))?;
                    &whole
                }
            };
            // The file identifier is made from the file as it came.
            pdfa::apply(&mut edits, doc, &pdf).map_err(|e| failed("pdfa", e))?;
            Some(t.elapsed())
        }
        None => None,
    };
    let mut changes = edits.finish();
    let out = match (base, loaded) {
        (Some(base), _) => {
            if let Some(version) = changes.version {
                if !raise_header(&mut pdf, version) {
                    // The catalog's /Version says it where the header cannot (7.7.2).
                    changes.set_catalog_version(version);
                }
            }
            write::append(&mut pdf, base, &changes.objects, &changes.trailer);
            pdf
        }
        // Its cross-reference data was repaired, or it is encrypted: no update can point
        // back at it. Written whole.
        (None, Some(mut doc)) => {
            changes.apply_to(&mut doc);
            write::document(&doc)
        }
        (None, None) => return Err(failed("metadata", "the PDF could not be read")),
    };
    Ok((out, steps(started.elapsed(), pdfa_took)))
}

/// A batch's document, written whole with the steps' changes.
fn edit_parsed(
    mut doc: Document,
    given: Option<&Metadata>,
    pdfa: Option<PdfA>,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<Step>), RenderError> {
    let started = Instant::now();
    let mut edits = Edits::new(Source::Parsed(&doc));
    apply_metadata(&mut edits, given, pdfa, now)?;
    let pdfa_took = match pdfa {
        Some(_) => {
            let t = Instant::now();
            // No file it came as: random bytes (the identifier need only be its own).
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| failed("pdfa", e))?;
            pdfa::apply(&mut edits, &doc, &seed).map_err(|e| failed("pdfa", e))?;
            Some(t.elapsed())
        }
        None => None,
    };
    let changes = edits.finish();
    changes.apply_to(&mut doc);
    let out = write::document(&doc);
    Ok((out, steps(started.elapsed(), pdfa_took)))
}

fn apply_metadata(
    edits: &mut Edits<'_>,
    given: Option<&Metadata>,
    pdfa: Option<PdfA>,
    now: Timestamp,
) -> Result<(), RenderError> {
    let title = metadata::document_title(edits);
    let fields = metadata::Fields::new(given, title, now).map_err(|e| failed("metadata", e))?;
    metadata::apply(edits, &fields, pdfa).map_err(|e| failed("metadata", e))
}

/// The metadata step's time (all but PDF/A's), and PDF/A's.
fn steps(total: Duration, pdfa_took: Option<Duration>) -> Vec<Step> {
    let metadata_took = total.saturating_sub(pdfa_took.unwrap_or_default());
    let mut steps = vec![Step { name: "metadata", took: metadata_took }];
    steps.extend(pdfa_took.map(|took| Step { name: "pdfa", took }));
    steps
}

fn load(pdf: &[u8]) -> Result<Document, RenderError> {
    Document::load_mem(pdf).map_err(|e| failed("metadata", e))
}

/// Where an update can go after `doc`, read by lopdf from `pdf`: not after a table lopdf had
/// to repair (the update would point back at a wrong offset), nor after encryption (the
/// update would be written in the clear).
fn appendable(doc: &Document, pdf: &[u8]) -> Option<write::Base> {
    let intact = doc.xref_recovery.is_none() && pdf.starts_with(b"%PDF-");
    let clear = doc.encryption_state.is_none() && !doc.trailer.has(b"Encrypt");
    let form = match doc.reference_table.cross_reference_type {
        lopdf::xref::XrefType::CrossReferenceTable => write::XrefForm::Table,
        lopdf::xref::XrefType::CrossReferenceStream => write::XrefForm::Stream,
    };
    let size = doc.reference_table.size.max(doc.max_id.saturating_add(1));
    (intact && clear && doc.xref_start > 0).then_some(write::Base {
        prev: doc.xref_start,
        form,
        size,
    })
}

/// Raises `%PDF-1.x` at the start of `pdf` to `version` in place: the same length, so no
/// offset moves. False when the header is not of that form.
fn raise_header(pdf: &mut [u8], version: &str) -> bool {
    let version = version.as_bytes();
    let Some(current) = pdf.get_mut(5..8) else { return false };
    let form =
        |v: &[u8]| v.len() == 3 && v[0].is_ascii_digit() && v[1] == b'.' && v[2].is_ascii_digit();
    if !form(current) || !form(version) {
        return false;
    }
    if *current < *version {
        current.copy_from_slice(version);
    }
    true
}

/// What the steps read: Chromium's file, or a parsed document.
enum Source<'a> {
    File(&'a xref::Original<'a>),
    Parsed(&'a Document),
}

/// The objects the steps write, over the PDF they edit, which stays as it is.
struct Edits<'a> {
    source: Source<'a>,
    /// New objects, and new versions of the PDF's own, by number.
    objects: BTreeMap<ObjectId, Object>,
    /// The document's trailer.
    trailer: Dictionary,
    /// The next free object number.
    next: u32,
    /// The PDF version the file must declare at least.
    version: Option<&'static str>,
}

/// What [`Edits`] collected.
struct Changes {
    objects: BTreeMap<ObjectId, Object>,
    trailer: Dictionary,
    version: Option<&'static str>,
}

impl<'a> Edits<'a> {
    fn new(source: Source<'a>) -> Self {
        let (trailer, next) = match &source {
            Source::File(o) => (o.trailer.clone(), o.size),
            Source::Parsed(doc) => (doc.trailer.clone(), doc.max_id.saturating_add(1)),
        };
        Self { source, objects: BTreeMap::new(), trailer, next, version: None }
    }

    /// Object `id` as the steps have it so far.
    fn object(&self, id: ObjectId) -> Option<Cow<'_, Object>> {
        if let Some(object) = self.objects.get(&id) {
            return Some(Cow::Borrowed(object));
        }
        match &self.source {
            Source::File(o) => o.object(id).map(Cow::Owned),
            Source::Parsed(doc) => doc.objects.get(&id).map(Cow::Borrowed),
        }
    }

    /// `object`, or the object it refers to.
    fn resolve<'b>(&'b self, object: &'b Object) -> Option<Cow<'b, Object>> {
        match object {
            Object::Reference(id) => self.object(*id),
            direct => Some(Cow::Borrowed(direct)),
        }
    }

    /// Object `id`, to change: it will be written again.
    fn object_mut(&mut self, id: ObjectId) -> Option<&mut Object> {
        if !self.objects.contains_key(&id) {
            let object = self.object(id)?.into_owned();
            self.objects.insert(id, object);
        }
        self.objects.get_mut(&id)
    }

    /// Replaces object `id`.
    fn set(&mut self, id: ObjectId, object: Object) {
        self.objects.insert(id, object);
    }

    /// A new object, and its number.
    fn add(&mut self, object: impl Into<Object>) -> ObjectId {
        let id = (self.next, 0);
        self.next = self.next.saturating_add(1);
        self.objects.insert(id, object.into());
        id
    }

    fn trailer_mut(&mut self) -> &mut Dictionary {
        &mut self.trailer
    }

    fn trailer(&self) -> &Dictionary {
        &self.trailer
    }

    /// The catalog, to change.
    fn catalog_mut(&mut self) -> Result<&mut Dictionary, lopdf::Error> {
        let root = self.trailer.get(b"Root").and_then(Object::as_reference)?;
        self.object_mut(root).ok_or(lopdf::Error::ObjectNotFound(root))?.as_dict_mut()
    }

    /// The file must say it is at least `version` (`1.7`).
    fn require_version(&mut self, version: &'static str) {
        self.version = Some(version);
    }

    fn finish(self) -> Changes {
        Changes { objects: self.objects, trailer: self.trailer, version: self.version }
    }
}

impl Changes {
    fn apply_to(self, doc: &mut Document) {
        for (id, object) in self.objects {
            doc.max_id = doc.max_id.max(id.0);
            doc.objects.insert(id, object);
        }
        doc.trailer = self.trailer;
        if let Some(version) = self.version {
            if doc.version.as_str() < version {
                doc.version = version.to_owned();
            }
        }
    }

    fn set_catalog_version(&mut self, version: &'static str) {
        let root = self.trailer.get(b"Root").and_then(Object::as_reference).ok();
        let catalog = root.and_then(|root| self.objects.get_mut(&root));
        if let Some(Object::Dictionary(catalog)) = catalog {
            catalog.set("Version", Object::Name(version.as_bytes().to_vec()));
        }
    }
}

/// The metadata step alone, now and as it was, for the benchmark (feature `testing`).
#[cfg(feature = "testing")]
pub mod bench {
    use super::*;

    /// The metadata step on Chromium's `pdf`: the update appended.
    pub fn metadata(pdf: Vec<u8>, given: Option<&Metadata>) -> Result<Vec<u8>, RenderError> {
        edit_file(pdf, given, None, now()?).map(|(pdf, _)| pdf)
    }

    /// The metadata step as it was until issue 30: lopdf parsed the whole file and wrote it
    /// again.
    pub fn metadata_resaved(pdf: &[u8], given: Option<&Metadata>) -> Result<Vec<u8>, RenderError> {
        metadata_parsed_resaved(load(pdf)?, given)
    }

    /// The metadata step on a parsed document (a batch's): written whole by this stage.
    pub fn metadata_parsed(
        doc: Document,
        given: Option<&Metadata>,
    ) -> Result<Vec<u8>, RenderError> {
        edit_parsed(doc, given, None, now()?).map(|(pdf, _)| pdf)
    }

    /// The same as it was until issue 30: written whole by lopdf.
    pub fn metadata_parsed_resaved(
        mut doc: Document,
        given: Option<&Metadata>,
    ) -> Result<Vec<u8>, RenderError> {
        let mut edits = Edits::new(Source::Parsed(&doc));
        apply_metadata(&mut edits, given, None, now()?)?;
        edits.finish().apply_to(&mut doc);
        let mut out = Vec::with_capacity(64 * 1024);
        doc.save_to(&mut out).map_err(|e| failed("metadata", e))?;
        Ok(out)
    }
}

/// The time of the render: the default creation date, and the modification date.
fn now() -> Result<Timestamp, RenderError> {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_unix(secs).map_err(|e| failed("metadata", format!("the clock: {e}")))
}

fn failed(step: &str, e: impl std::fmt::Display) -> RenderError {
    RenderError::PostProcess(format!("the {step} step failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lopdf::dictionary;

    /// A one-page PDF with a classic cross-reference table, and `extra` in its catalog.
    fn pdf(extra: Option<Object>) -> Vec<u8> {
        let mut doc = Document::with_version("1.4");
        let pages = doc.new_object_id();
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages, "MediaBox" => vec![0.into(), 0.into(), 595.92.into(), 841.92.into()],
        });
        doc.objects.insert(
            pages,
            Object::Dictionary(
                dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
            ),
        );
        let mut catalog = dictionary! { "Type" => "Catalog", "Pages" => pages };
        if let Some(extra) = extra {
            catalog.set("Extra", extra);
        }
        let catalog = doc.add_object(catalog);
        let info = doc.add_object(dictionary! { "Title" => Object::string_literal("Old") });
        doc.trailer.set("Root", catalog);
        doc.trailer.set("Info", info);
        // As Chromium writes it (lopdf's default is a cross-reference stream).
        doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-12-07T10:00:00Z").unwrap()
    }

    fn info_field(pdf: &[u8], key: &[u8]) -> Vec<u8> {
        let doc = Document::load_mem(pdf).unwrap();
        let info = doc.trailer.get_deref(b"Info", &doc).unwrap().as_dict().unwrap();
        info.get(key).unwrap().as_str().unwrap().to_vec()
    }

    #[test]
    fn the_update_goes_after_the_file_and_is_what_readers_see() {
        let original = pdf(None);
        assert!(xref::Original::read(&original).is_some_and(|o| o.readable()));
        let (out, steps) = edit_file(original.clone(), None, None, now()).unwrap();
        assert!(out.starts_with(&original));
        let update = &out[original.len()..];
        assert!(update.windows(9).any(|w| w == b"xref\n0 1\n"), "a table after a table");
        assert_eq!(steps.iter().map(|s| s.name).collect::<Vec<_>>(), ["metadata"]);
        assert_eq!(info_field(&out, b"Title"), b"Old", "the document's title kept");
        assert_eq!(info_field(&out, b"Producer"), metadata::PRODUCER.as_bytes());
        let doc = Document::load_mem(&out).unwrap();
        let xmp = doc.catalog().unwrap().get(b"Metadata").unwrap().as_reference().unwrap();
        let xmp = doc.get_object(xmp).unwrap().as_stream().unwrap();
        assert!(String::from_utf8_lossy(&xmp.content).contains("<dc:title>"));

        // An update of the update: both sections read, the newest wins.
        let given: Metadata = serde_json::from_str(r#"{"title": "Newer"}"#).unwrap();
        let (again, _) = edit_file(out.clone(), Some(&given), None, now()).unwrap();
        assert!(again.starts_with(&out));
        assert_eq!(info_field(&again, b"Title"), b"Newer");
    }

    #[test]
    fn pdfa_raises_the_header_in_place() {
        let original = pdf(None);
        let (out, steps) = edit_file(original.clone(), None, Some(PdfA::A2b), now()).unwrap();
        assert_eq!(steps.iter().map(|s| s.name).collect::<Vec<_>>(), ["metadata", "pdfa"]);
        assert!(out.starts_with(b"%PDF-1.7\n"));
        assert_eq!(out[8..original.len()], original[8..]);
        let doc = Document::load_mem(&out).unwrap();
        assert!(doc.trailer.get(b"ID").is_ok());
        assert!(doc.catalog().unwrap().get(b"OutputIntents").is_ok());
        // A header that cannot be raised in place: the catalog says the version (7.7.2).
        let mut odd = original.clone();
        odd[5..8].copy_from_slice(b"1.x");
        assert!(!raise_header(&mut odd.clone(), "1.7"));
        let (out, _) = edit_file(odd.clone(), None, Some(PdfA::A2b), now()).unwrap();
        assert!(out.starts_with(&odd));
        let doc = Document::load_mem(&out).unwrap();
        assert_eq!(doc.catalog().unwrap().get(b"Version").unwrap().as_name().unwrap(), b"1.7");
        let mut newer = original;
        newer[5..8].copy_from_slice(b"2.0");
        assert!(raise_header(&mut newer, "1.7") && newer.starts_with(b"%PDF-2.0"), "no downgrade");
    }

    #[test]
    fn pdfa_writes_again_only_the_annotations_and_images_it_fixes() {
        let mut doc = Document::load_mem(&pdf(None)).unwrap();
        let link = doc.add_object(dictionary! {
            "Type" => "Annot", "Subtype" => "Link", "F" => 2,
            "Rect" => vec![33.75.into(), 745.5.into(), 75.into(), 758.25.into()],
        });
        let printed =
            doc.add_object(dictionary! { "Type" => "Annot", "Subtype" => "Link", "F" => 4 });
        let image = doc.add_object(lopdf::Stream::new(
            dictionary! { "Subtype" => "Image", "Interpolate" => true, "Width" => 1 },
            vec![0, 1, 2],
        ));
        let page = *doc.get_pages().get(&1).unwrap();
        let page = doc.get_object_mut(page).unwrap().as_dict_mut().unwrap();
        page.set("Annots", vec![Object::Reference(link), Object::Reference(printed)]);
        doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
        let mut original = Vec::new();
        doc.save_to(&mut original).unwrap();

        let (out, _) = edit_file(original.clone(), None, Some(PdfA::A2b), now()).unwrap();
        assert_eq!(out[8..original.len()], original[8..]);
        let update = String::from_utf8_lossy(&out[original.len()..]).into_owned();
        assert!(update.contains(&format!("\n{} 0 obj\n", link.0)), "{update}");
        assert!(update.contains(&format!("\n{} 0 obj\n", image.0)), "{update}");
        assert!(!update.contains(&format!("\n{} 0 obj\n", printed.0)), "unchanged: {update}");
        assert!(update.contains("/Rect [33.75 745.5 75 758.25]"), "{update}");
        let after = Document::load_mem(&out).unwrap();
        let flags = after.get_dictionary(link).unwrap().get(b"F").unwrap().as_i64().unwrap();
        assert_eq!(flags, 4);
        let image = after.get_object(image).unwrap().as_stream().unwrap();
        assert!(!image.dict.has(b"Interpolate"));
        assert_eq!(image.content, [0, 1, 2]);
    }

    #[test]
    fn a_catalog_this_reader_refuses_is_read_by_lopdf_and_still_updated() {
        // Nested deeper than the reader goes: lopdf reads it, and the update still follows.
        let mut deep = Object::Integer(1);
        for _ in 0..80 {
            deep = Object::Array(vec![deep]);
        }
        let original = pdf(Some(deep));
        let raw = xref::Original::read(&original).unwrap();
        assert!(!raw.readable());
        let (out, _) = edit_file(original.clone(), None, None, now()).unwrap();
        assert!(out.starts_with(&original));
        assert_eq!(info_field(&out, b"Producer"), metadata::PRODUCER.as_bytes());
        // Not a PDF at all: an error, no panic.
        assert!(edit_file(b"%PDF-1.4\nnothing".to_vec(), None, None, now()).is_err());
        assert!(edit_file(Vec::new(), None, None, now()).is_err());
    }

    #[test]
    fn a_parsed_document_is_written_whole_with_skia_s_numbers() {
        let doc = Document::load_mem(&pdf(None)).unwrap();
        let (out, _) = edit_parsed(doc, None, None, now()).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("[0 0 595.91998 841.91998]"), "{text}");
        let doc = Document::load_mem(&out).unwrap();
        assert_eq!(doc.get_pages().len(), 1);
        assert_eq!(info_field(&out, b"Producer"), metadata::PRODUCER.as_bytes());
    }
}

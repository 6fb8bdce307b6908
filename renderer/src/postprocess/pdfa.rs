//! PDF/A-2b from Chromium's PDF. Skia already embeds every font (TrueType subsets, Type 3 for
//! the rest), uses only Flate and DCT, no actions or scripts, and paints in device RGB. What
//! it lacks for ISO 19005-2 level B, added here (the XMP identification is [`super::metadata`]'s):
//! - an output intent with an embedded sRGB profile, which makes its DeviceRGB (and
//!   DeviceGray, and transparency blending) device-independent (6.2.4.2, 6.2.4.3);
//! - a file identifier in the trailer (6.1.3);
//! - the version the format is based on, PDF 1.7 (6.1.2), raised in the header in place;
//! - annotations (links) flagged to print and not hidden (6.3.2);
//! - no `/Interpolate true` on images (6.2.8.1).

use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use sha2::{Digest, Sha256};

use super::Edits;

/// sRGB IEC61966-2.1, ICC v2 (see renderer/assets/README.md).
const SRGB_ICC: &[u8] = include_bytes!("../../assets/sRGB.icc");

/// Annotation flags (PDF 32000-1, 12.5.3).
const INVISIBLE: i64 = 1;
const HIDDEN: i64 = 2;
const PRINT: i64 = 4;
const NO_VIEW: i64 = 32;
const TOGGLE_NO_VIEW: i64 = 256;

/// Adds to `edits` what `doc` (the whole document, read from `original`) lacks for
/// PDF/A-2b, but for the XMP. Only the objects it changes are written again.
pub(super) fn apply(
    edits: &mut Edits<'_>,
    doc: &Document,
    original: &[u8],
) -> Result<(), lopdf::Error> {
    edits.require_version("1.7");

    // Two equal halves: the file was made in one go (PDF 32000-1, 14.4).
    let id: Vec<u8> = Sha256::digest(original)[..16].to_vec();
    edits.trailer_mut().set(
        "ID",
        vec![
            Object::String(id.clone(), StringFormat::Hexadecimal),
            Object::String(id, StringFormat::Hexadecimal),
        ],
    );

    let profile = Stream::new(dictionary! { "N" => 3 }, SRGB_ICC.to_vec());
    let profile_id = edits.add(profile);
    let intent = dictionary! {
        "Type" => "OutputIntent",
        "S" => "GTS_PDFA1",
        "OutputConditionIdentifier" => Object::string_literal("sRGB IEC61966-2.1"),
        "Info" => Object::string_literal("sRGB IEC61966-2.1"),
        "RegistryName" => Object::string_literal("http://www.color.org"),
        "DestOutputProfile" => profile_id,
    };
    let intent_id = edits.add(intent);
    edits.catalog_mut()?.set("OutputIntents", vec![Object::Reference(intent_id)]);

    for (id, object) in &doc.objects {
        match object {
            Object::Dictionary(dict) if is_annotation(dict) => {
                let mut dict = dict.clone();
                if printable(&mut dict) {
                    edits.set(*id, Object::Dictionary(dict));
                }
            }
            Object::Stream(stream)
                if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Image")
                    && stream.dict.has(b"Interpolate") =>
            {
                let mut stream = stream.clone();
                stream.dict.remove(b"Interpolate");
                edits.set(*id, Object::Stream(stream));
            }
            _ => {}
        }
    }
    // Annotations written inline in a page's /Annots array.
    for page in doc.get_pages().into_values() {
        let Ok(Object::Dictionary(dict)) = doc.get_object(page) else { continue };
        let Ok(Object::Array(annots)) = dict.get(b"Annots") else { continue };
        let mut annots = annots.clone();
        let mut changed = false;
        for annot in &mut annots {
            if let Object::Dictionary(annot) = annot {
                changed |= printable(annot);
            }
        }
        if changed {
            let mut dict = dict.clone();
            dict.set("Annots", annots);
            edits.set(page, Object::Dictionary(dict));
        }
    }
    Ok(())
}

fn is_annotation(dict: &lopdf::Dictionary) -> bool {
    dict.has_type(b"Annot") || dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Link")
}

/// Flags `annot` to print and be seen; whether that changed it.
fn printable(annot: &mut lopdf::Dictionary) -> bool {
    let flags = annot.get(b"F").and_then(Object::as_i64).ok();
    let wanted = (flags.unwrap_or(0) | PRINT) & !(INVISIBLE | HIDDEN | NO_VIEW | TOGGLE_NO_VIEW);
    if flags == Some(wanted) {
        return false;
    }
    annot.set("F", wanted);
    true
}

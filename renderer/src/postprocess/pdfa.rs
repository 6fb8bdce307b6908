//! PDF/A-2b from Chromium's PDF. Skia already embeds every font (TrueType subsets, Type 3 for
//! the rest), uses only Flate and DCT, no actions or scripts, and paints in device RGB. What
//! it lacks for ISO 19005-2 level B, added here (the XMP identification is [`super::metadata`]'s):
//! - an output intent with an embedded sRGB profile, which makes its DeviceRGB (and
//!   DeviceGray, and transparency blending) device-independent (6.2.4.2, 6.2.4.3);
//! - a file identifier in the trailer (6.1.3);
//! - the version the format is based on, PDF 1.7 (6.1.2);
//! - annotations (links) flagged to print and not hidden (6.3.2);
//! - no `/Interpolate true` on images (6.2.8.1).

use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use sha2::{Digest, Sha256};

/// sRGB IEC61966-2.1, ICC v2 (see renderer/assets/README.md).
const SRGB_ICC: &[u8] = include_bytes!("../../assets/sRGB.icc");

/// Annotation flags (PDF 32000-1, 12.5.3).
const INVISIBLE: i64 = 1;
const HIDDEN: i64 = 2;
const PRINT: i64 = 4;
const NO_VIEW: i64 = 32;
const TOGGLE_NO_VIEW: i64 = 256;

/// Makes `doc` (parsed from `original`) conform to PDF/A-2b, but for the XMP.
pub(super) fn apply(doc: &mut Document, original: &[u8]) -> Result<(), lopdf::Error> {
    doc.version = String::from("1.7");

    // Two equal halves: the file was made in one go (PDF 32000-1, 14.4).
    let id: Vec<u8> = Sha256::digest(original)[..16].to_vec();
    doc.trailer.set(
        "ID",
        vec![
            Object::String(id.clone(), StringFormat::Hexadecimal),
            Object::String(id, StringFormat::Hexadecimal),
        ],
    );

    let profile = Stream::new(dictionary! { "N" => 3 }, SRGB_ICC.to_vec());
    let profile_id = doc.add_object(profile);
    let intent = dictionary! {
        "Type" => "OutputIntent",
        "S" => "GTS_PDFA1",
        "OutputConditionIdentifier" => Object::string_literal("sRGB IEC61966-2.1"),
        "Info" => Object::string_literal("sRGB IEC61966-2.1"),
        "RegistryName" => Object::string_literal("http://www.color.org"),
        "DestOutputProfile" => profile_id,
    };
    let intent_id = doc.add_object(intent);
    doc.catalog_mut()?.set("OutputIntents", vec![Object::Reference(intent_id)]);

    for object in doc.objects.values_mut() {
        match object {
            Object::Dictionary(dict) if is_annotation(dict) => printable(dict),
            Object::Stream(stream)
                if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Image") =>
            {
                stream.dict.remove(b"Interpolate");
            }
            _ => {}
        }
    }
    // Annotations written inline in a page's /Annots array.
    for page in doc.get_pages().into_values() {
        let Ok(Object::Dictionary(page)) = doc.get_object_mut(page) else { continue };
        let Ok(Object::Array(annots)) = page.get_mut(b"Annots") else { continue };
        for annot in annots {
            if let Object::Dictionary(dict) = annot {
                printable(dict);
            }
        }
    }
    Ok(())
}

fn is_annotation(dict: &lopdf::Dictionary) -> bool {
    dict.has_type(b"Annot") || dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Link")
}

fn printable(annot: &mut lopdf::Dictionary) {
    let flags = annot.get(b"F").and_then(Object::as_i64).unwrap_or(0);
    annot.set("F", (flags | PRINT) & !(INVISIBLE | HIDDEN | NO_VIEW | TOGGLE_NO_VIEW));
}

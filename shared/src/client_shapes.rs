//! What TailPDF's clients really send, brought to the one shape the contract's types read.
//!
//! TailPDF (like Puppeteer underneath it) ignores keys it does not know, and its most-used
//! client is PHP, whose `json_encode` writes an empty array as `[]` whether it meant a list or
//! a map (`"config": []`, `"margin": []`). A drop-in replacement must take those bodies as they
//! are meant. [`normalize`] does so on the parsed JSON before the typed parse: `[]` and `null`
//! where a map is expected mean "not given", an empty `webhook_url` means none, and unknown keys
//! are dropped and named, so that the response can list them in [`IGNORED_HEADER`] and a typo
//! stays visible. The typed structs keep `deny_unknown_fields`: between the edge and the
//! renderer an unknown key is a version mismatch, never something to ignore.

use serde_json::{Map, Value};

/// The response header that names the request's ignored fields, comma-separated.
pub const IGNORED_HEADER: &str = "X-TailPDF-Ignored";

/// The keys of a `POST /pdf` body ([`crate::request::PdfRequest`]).
pub const REQUEST_KEYS: [&str; 7] =
    ["content", "fonts", "config", "pdfOptions", "async", "upload_url", "webhook_url"];

/// The keys of `pdfOptions` ([`crate::pdf_options::PdfOptions`]).
pub const PDF_OPTION_KEYS: [&str; 17] = [
    "format",
    "landscape",
    "printBackground",
    "scale",
    "margin",
    "width",
    "height",
    "pageRanges",
    "preferCSSPageSize",
    "displayHeaderFooter",
    "headerTemplate",
    "footerTemplate",
    "tagged",
    "outline",
    "password",
    "metadata",
    "pdfa",
];

/// The keys of `pdfOptions.margin` ([`crate::pdf_options::Margin`]).
pub const MARGIN_KEYS: [&str; 4] = ["top", "right", "bottom", "left"];

/// At most this many names go into [`IGNORED_HEADER`]; the rest are counted.
const MAX_NAMED: usize = 20;
/// A name longer than this is cut (a header is no place for a key of a megabyte).
const MAX_NAME_CHARS: usize = 64;

/// Brings `body` to the canonical shape; returns the paths of the keys it dropped
/// (`pdfOptions.timeout`), in the order they appear.
pub fn normalize(body: &mut Map<String, Value>) -> Vec<String> {
    let mut ignored = drop_unknown(body, &REQUEST_KEYS, "");
    for key in ["config", "fonts", "pdfOptions"] {
        drop_if_empty(body, key);
    }
    if body.get("webhook_url").and_then(Value::as_str).is_some_and(|u| u.trim().is_empty()) {
        body.remove("webhook_url");
    }
    if let Some(Value::Object(options)) = body.get_mut("pdfOptions") {
        ignored.extend(drop_unknown(options, &PDF_OPTION_KEYS, "pdfOptions."));
        // PHP's empty array; a password stays, to be refused as not an object.
        drop_if_empty(options, "margin");
        drop_if_empty(options, "metadata");
        if let Some(Value::Object(margin)) = options.get_mut("margin") {
            ignored.extend(drop_unknown(margin, &MARGIN_KEYS, "pdfOptions.margin."));
        }
    }
    ignored
}

/// `[]` (PHP's empty array) and `null` mean the field was not given.
fn drop_if_empty(map: &mut Map<String, Value>, key: &str) {
    if matches!(map.get(key), Some(Value::Null))
        || map.get(key).and_then(Value::as_array).is_some_and(Vec::is_empty)
    {
        map.remove(key);
    }
}

fn drop_unknown(map: &mut Map<String, Value>, known: &[&str], prefix: &str) -> Vec<String> {
    let unknown: Vec<String> =
        map.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
    for key in &unknown {
        map.remove(key);
    }
    unknown.into_iter().map(|k| format!("{prefix}{k}")).collect()
}

/// The value of [`IGNORED_HEADER`] for `ignored`, or `None` when nothing was ignored. Names are
/// made printable ASCII and cut, and past [`MAX_NAMED`] only counted, so that any body makes a
/// valid header of bounded size.
pub fn ignored_header_value(ignored: &[String]) -> Option<String> {
    if ignored.is_empty() {
        return None;
    }
    let mut names: Vec<String> = ignored
        .iter()
        .take(MAX_NAMED)
        .map(|name| {
            let mut clean: String = name
                .chars()
                .take(MAX_NAME_CHARS)
                .map(|c| if c.is_ascii_graphic() && c != ',' { c } else { '?' })
                .collect();
            if name.chars().count() > MAX_NAME_CHARS {
                clean.push_str("...");
            }
            // The empty key (`{"": 1}`) is named too, visibly.
            if clean.is_empty() {
                clean.push_str("\"\"");
            }
            clean
        })
        .collect();
    if ignored.len() > MAX_NAMED {
        names.push(format!("(and {} more)", ignored.len() - MAX_NAMED));
    }
    Some(names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalized(body: Value) -> (Value, Vec<String>) {
        let Value::Object(mut map) = body else { panic!("an object") };
        let ignored = normalize(&mut map);
        (Value::Object(map), ignored)
    }

    #[test]
    fn php_empty_arrays_and_nulls_mean_not_given() {
        let (body, ignored) = normalized(json!({
            "content": "x",
            "fonts": [],
            "config": [],
            "pdfOptions": {"format": "a4", "margin": []},
        }));
        assert_eq!(body, json!({"content": "x", "pdfOptions": {"format": "a4"}}));
        assert!(ignored.is_empty());
        let (body, _) = normalized(
            json!({"content": "x", "config": null, "fonts": null, "pdfOptions": {"margin": null}}),
        );
        assert_eq!(body, json!({"content": "x", "pdfOptions": {}}));
        let (body, _) = normalized(json!({"content": "x", "pdfOptions": []}));
        assert_eq!(body, json!({"content": "x"}));
    }

    #[test]
    fn non_empty_lists_are_left_for_the_typed_parse_to_refuse() {
        let (body, _) =
            normalized(json!({"content": "x", "config": [1], "pdfOptions": {"margin": ["1in"]}}));
        assert_eq!(body["config"], json!([1]));
        assert_eq!(body["pdfOptions"]["margin"], json!(["1in"]));
    }

    #[test]
    fn unknown_keys_are_dropped_and_named_with_their_path() {
        let (body, ignored) = normalized(json!({
            "content": "x",
            "asyn": true,
            "pdfOptions": {"format": "A4", "timeout": 30000, "omitBackground": true,
                           "margin": {"top": "1in", "middle": "1in"}},
        }));
        assert_eq!(
            ignored,
            ["asyn", "pdfOptions.omitBackground", "pdfOptions.timeout", "pdfOptions.margin.middle"]
        );
        assert_eq!(
            body,
            json!({"content": "x", "pdfOptions": {"format": "A4", "margin": {"top": "1in"}}})
        );
    }

    #[test]
    fn an_empty_metadata_array_means_none_and_a_password_array_stays_to_be_refused() {
        let (body, _) = normalized(json!({"content": "x",
            "pdfOptions": {"metadata": [], "password": []}}));
        assert_eq!(body, json!({"content": "x", "pdfOptions": {"password": []}}));
    }

    #[test]
    fn an_empty_webhook_url_means_none() {
        let (body, ignored) = normalized(json!({"content": "x", "webhook_url": " "}));
        assert_eq!(body, json!({"content": "x"}));
        assert!(ignored.is_empty());
    }

    #[test]
    fn the_known_keys_are_exactly_the_fields_of_the_types() {
        // A field added to a type without its key here would be dropped as unknown.
        use crate::pdf_options::{Length, Margin, PdfOptions};
        use crate::request::PdfRequest;
        let len = || Some(Length::Pixels(1.0));
        let margin = Margin { top: len(), right: len(), bottom: len(), left: len() };
        let options = PdfOptions {
            format: Some("A4".into()),
            landscape: Some(true),
            print_background: Some(true),
            scale: Some(1.0),
            margin: Some(margin.clone()),
            width: len(),
            height: len(),
            page_ranges: Some("1".into()),
            prefer_css_page_size: Some(true),
            display_header_footer: Some(true),
            header_template: Some("h".into()),
            footer_template: Some("f".into()),
            tagged: Some(true),
            outline: Some(true),
            password: Some(crate::postprocess::Password::default()),
            metadata: Some(crate::postprocess::Metadata::default()),
            pdfa: Some("2b".into()),
        };
        let request = PdfRequest {
            content: Some("x".into()),
            fonts: Some(vec![]),
            config: Some(Map::new()),
            pdf_options: Some(options.clone()),
            is_async: Some(true),
            upload_url: Some("u".into()),
            webhook_url: Some("w".into()),
        };
        let keys = |v: Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let sorted = |k: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = k.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        assert_eq!(keys(serde_json::to_value(&request).unwrap()), sorted(&REQUEST_KEYS));
        assert_eq!(keys(serde_json::to_value(&options).unwrap()), sorted(&PDF_OPTION_KEYS));
        assert_eq!(keys(serde_json::to_value(&margin).unwrap()), sorted(&MARGIN_KEYS));
    }

    #[test]
    fn the_header_names_what_was_ignored_within_bounds() {
        assert_eq!(ignored_header_value(&[]), None);
        assert_eq!(
            ignored_header_value(&["pdfOptions.timeout".into(), "upload_url".into()]).unwrap(),
            "pdfOptions.timeout, upload_url"
        );
        let hostile = format!("a\r\nSet-Cookie: x,é{}", "k".repeat(500));
        let value = ignored_header_value(&[hostile]).unwrap();
        assert!(value.bytes().all(|b| b.is_ascii_graphic() || b == b' '), "{value}");
        assert!(value.len() < 80, "{value}");
        assert_eq!(ignored_header_value(&[String::new(), "a".into()]).unwrap(), r#""", a"#);
        let many: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let value = ignored_header_value(&many).unwrap();
        assert!(value.ends_with("(and 980 more)"), "{value}");
        assert!(value.len() < 20 * 70);
    }
}

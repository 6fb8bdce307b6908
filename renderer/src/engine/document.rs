//! The HTML that goes into a tab: fragments wrapped in a document, our styles put at the top of
//! its head, and the class names it uses (the Tailwind candidates).

use std::collections::BTreeSet;

/// Whether `content` is a whole document (kept as is) rather than a fragment (wrapped).
pub fn is_full_document(content: &str) -> bool {
    let head: String =
        content.trim_start().chars().take(1024).collect::<String>().to_ascii_lowercase();
    head.starts_with("<!doctype") || find_tag(&head, "html").is_some()
}

/// `content` as a full document, with `head_html` first in its head (so the document's own
/// styles come later and win).
pub fn build_document(content: &str, head_html: &str) -> String {
    if !is_full_document(content) {
        return format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\">{head_html}</head><body>{content}</body></html>"
        );
    }
    let lower = content.to_ascii_lowercase();
    if let Some(end) = find_tag(&lower, "head") {
        let mut out = String::with_capacity(content.len() + head_html.len());
        out.push_str(&content[..end]);
        out.push_str(head_html);
        out.push_str(&content[end..]);
        return out;
    }
    if let Some(end) = find_tag(&lower, "html") {
        return format!("{}<head>{head_html}</head>{}", &content[..end], &content[end..]);
    }
    format!("{head_html}{content}")
}

/// The byte offset just past the opening tag `<name ...>` (ASCII-lowercased input).
fn find_tag(lower: &str, name: &str) -> Option<usize> {
    let open = format!("<{name}");
    let mut from = 0;
    while let Some(i) = lower[from..].find(&open) {
        let start = from + i;
        let after = start + open.len();
        match lower.as_bytes().get(after) {
            Some(b'>') => return Some(after + 1),
            Some(c) if c.is_ascii_whitespace() || *c == b'/' => {
                return lower[after..].find('>').map(|j| after + j + 1);
            }
            _ => from = after,
        }
    }
    None
}

/// A `<style>` element holding `css`, which may come from the document (Tailwind copies
/// arbitrary values into its output as they are). In a style element only `</style` ends the
/// text, so every `</` becomes `<\/`: the same CSS (`\/` is `/` in CSS strings, URLs and
/// comments, the only places a `</` can be), and nothing in it can close the element.
pub fn style_element(css: &str, id: Option<&str>) -> String {
    let id = id.map(|id| format!(" id=\"{id}\"")).unwrap_or_default();
    format!("<style{id}>{}</style>", escape_style_text(css))
}

fn escape_style_text(css: &str) -> std::borrow::Cow<'_, str> {
    if css.contains("</") {
        css.replace("</", "<\\/").into()
    } else {
        css.into()
    }
}

/// The text of the first `<title>` element, as `document.title` gives it: entities decoded,
/// whitespace collapsed; `None` when there is none or it is blank.
pub fn title(content: &str) -> Option<String> {
    let lower = content.to_ascii_lowercase();
    let open = find_tag(&lower, "title")?;
    let close = lower[open..].find("</title").map_or(content.len(), |i| open + i);
    let text = decode_entities(&content[open..close]);
    let title = text.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

/// Whether the document may load fonts of its own (stylesheets, `@font-face`, `@import`).
pub fn may_load_fonts(content: &str) -> bool {
    let lower = content.to_ascii_lowercase();
    ["<link", "@font-face", "@import"].iter().any(|m| lower.contains(m))
}

/// Class names in `class` attributes, entities decoded, those with control characters left
/// out. The engine also reads `classList` from the loaded page, which catches classes added by
/// scripts ([`candidates`]).
pub fn class_candidates(html: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = html.as_bytes();
    let lower = html.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("class") {
        let start = from + i;
        from = start + 5;
        // Only a whole attribute name: preceded by whitespace, followed by optional spaces and '='.
        if start == 0 || !bytes[start - 1].is_ascii_whitespace() {
            continue;
        }
        let mut j = from;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if bytes.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let value = match bytes.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = html[j + 1..].find(q as char).map_or(html.len(), |k| j + 1 + k);
                from = end;
                &html[j + 1..end]
            }
            Some(_) => {
                let end = html[j..]
                    .find(|c: char| c.is_ascii_whitespace() || c == '>')
                    .map_or(html.len(), |k| j + k);
                from = end;
                &html[j..end]
            }
            None => break,
        };
        out.extend(
            decode_entities(value)
                .split_ascii_whitespace()
                .filter(|c| is_candidate(c))
                .map(str::to_owned),
        );
    }
    out
}

/// The names of `classes` (read from a page's DOM) that may be Tailwind candidates.
pub fn candidates(classes: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    classes.into_iter().filter(|c| is_candidate(c)).collect()
}

/// No utility has a control character in its name, and no such name goes to the compiler or
/// into a key (one once passed for another document's whole class list).
fn is_candidate(class: &str) -> bool {
    !class.chars().any(char::is_control)
}

fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_wrapped_and_documents_kept() {
        assert!(!is_full_document("<div class=\"p-8\">x</div>"));
        assert!(is_full_document("<!DOCTYPE html><html><body>x</body></html>"));
        assert!(is_full_document("  <HTML lang=\"en\"><body>x</body></HTML>"));
        assert!(!is_full_document("<htmlish>x</htmlish>"));
        let doc = build_document("<p>x</p>", "<style>a{}</style>");
        assert_eq!(
            doc,
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>a{}</style></head><body><p>x</p></body></html>"
        );
    }

    #[test]
    fn our_head_comes_first_in_an_existing_head() {
        let doc =
            build_document("<html><head lang=x><style>b{}</style></head><body/></html>", "<S>");
        assert_eq!(doc, "<html><head lang=x><S><style>b{}</style></head><body/></html>");
        let doc = build_document("<!doctype html><html lang=en><body>x</body></html>", "<S>");
        assert_eq!(doc, "<!doctype html><html lang=en><head><S></head><body>x</body></html>");
        assert_eq!(build_document("<!doctype html><p>x", "<S>"), "<S><!doctype html><p>x");
    }

    #[test]
    fn candidates_from_class_attributes() {
        let html = r#"<div class="p-8 text-sm/6"><span class='bg-black/[.35] font-bold!'>x</span>
            <p CLASS = "md:flex  hover:bg-sky-700">y</p><i class=size-4>z</i>
            <b class="[&amp;>*]:p-2"></b><a data-class="not-me" xclass="nor-me">w</a></div>"#;
        let got: Vec<String> = class_candidates(html).into_iter().collect();
        assert_eq!(
            got,
            [
                "[&>*]:p-2",
                "bg-black/[.35]",
                "font-bold!",
                "hover:bg-sky-700",
                "md:flex",
                "p-8",
                "size-4",
                "text-sm/6"
            ]
        );
    }

    #[test]
    fn names_with_control_characters_are_no_candidates() {
        let html = "<p class=\"bg-red-500\u{0}border\u{0}p-4 flex\">x</p><i class='a\u{1}b\u{7f} \u{85}c p-2'>y</i>";
        let got: Vec<String> = class_candidates(html).into_iter().collect();
        assert_eq!(got, ["flex", "p-2"]);
        let dom = candidates(["m-1", "x\u{0}y", "\u{9f}z", "text-[#fff]"].map(String::from));
        assert_eq!(dom.into_iter().collect::<Vec<_>>(), ["m-1", "text-[#fff]"]);
    }

    #[test]
    fn css_cannot_close_its_style_element() {
        let hostile = ".a::after { --tw-content: '</style><script>x()</script>'; } .b { background: url(</STYLE >) }";
        let element = style_element(hostile, Some("s"));
        assert!(element.starts_with("<style id=\"s\">") && element.ends_with("</style>"));
        let inner = &element["<style id=\"s\">".len()..element.len() - "</style>".len()];
        assert!(!inner.to_ascii_lowercase().contains("</"), "{inner}");
        assert!(inner.contains("'<\\/style><script>x()<\\/script>'"), "{inner}");
        assert_eq!(style_element("a { color: red }", None), "<style>a { color: red }</style>");
    }

    #[test]
    fn documents_that_may_load_fonts() {
        assert!(may_load_fonts("<link rel=stylesheet href=x>"));
        assert!(may_load_fonts("<style>@font-face{}</style>"));
        assert!(!may_load_fonts("<p class=\"font-serif\">x</p>"));
    }

    #[test]
    fn candidates_never_panic_on_odd_input() {
        for html in
            ["class", " class", " class=", " class=\"", " class= ", "<a class='x", "é class=ü"]
        {
            let _ = class_candidates(html);
        }
        assert_eq!(class_candidates("<a class='x").into_iter().collect::<Vec<_>>(), ["x"]);
    }
}

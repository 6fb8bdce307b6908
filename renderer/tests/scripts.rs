//! Every common script prints: an invoice line in each, in a document that names no font, comes
//! out of the real engine with real glyphs (none is glyph 0, the .notdef box), its text
//! extractable, every font embedded, emoji in colour and right-to-left lines laid out right to
//! left. The fonts are Debian's, installed by scripts/setup.sh and the image (docker/README.md).
//!
//! `pdftotext` alone hardly sees a box: Chromium maps the .notdef glyphs it draws to the
//! characters they stand for, and most come back. So the glyphs each page shows are read from
//! its content streams.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{engine_config, spec};
use lopdf::{content::Content, Dictionary, Document, Object, ObjectId};
use serde_json::json;
use tailpdf_e2e::pdf::{poppler, raster};
use tailpdf_renderer::engine::Engine;

/// One document of the corpus.
struct Case {
    name: &'static str,
    /// A fragment: the renderer wraps it, and no font is named anywhere.
    html: &'static str,
    /// Lines that must come back from the PDF, in logical order (compared without whitespace:
    /// pdftotext puts spaces between CJK and Thai characters as it sees fit).
    lines: &'static [&'static str],
    /// Right-to-left: (the first word of a line, a Latin word or number later in the same
    /// line). The first must lie to the right of the second.
    rtl: Option<(&'static str, &'static str)>,
}

const CORPUS: &[Case] = &[
    Case {
        name: "Japanese",
        html: r#"<div class="p-8"><h1 class="text-2xl font-bold">請求書 第1234号</h1>
<p class="mt-4">株式会社サンプル 御中</p>
<p>ウェブサイト制作費として、下記のとおりご請求申し上げます。</p>
<p class="font-semibold">合計金額（税込）：¥132,000</p></div>"#,
        lines: &[
            "請求書 第1234号",
            "株式会社サンプル 御中",
            "ウェブサイト制作費として、下記のとおりご請求申し上げます。",
            "合計金額（税込）：¥132,000",
        ],
        rtl: None,
    },
    Case {
        name: "Chinese",
        html: r#"<div class="p-8"><h1 class="text-2xl font-bold">发票 编号 2024-0088</h1>
<p class="mt-4">客户：北京示例科技有限公司</p>
<p>网站设计与开发服务，共计人民币 ¥8,800.00 元。</p>
<p>繁體：臺北市信義區，發票總額新臺幣 12,000 元。</p></div>"#,
        lines: &[
            "发票 编号 2024-0088",
            "客户：北京示例科技有限公司",
            "网站设计与开发服务，共计人民币 ¥8,800.00 元。",
            "繁體：臺北市信義區，發票總額新臺幣 12,000 元。",
        ],
        rtl: None,
    },
    Case {
        name: "Korean",
        html: r#"<div class="p-8"><h1 class="text-2xl font-bold">청구서 번호 2024-0042</h1>
<p class="mt-4">주식회사 예시 귀하</p>
<p>웹사이트 디자인 및 개발 비용을 아래와 같이 청구합니다.</p>
<p class="font-semibold">합계 금액: ₩1,250,000</p></div>"#,
        lines: &[
            "청구서 번호 2024-0042",
            "주식회사 예시 귀하",
            "웹사이트 디자인 및 개발 비용을 아래와 같이 청구합니다.",
            "합계 금액: ₩1,250,000",
        ],
        rtl: None,
    },
    Case {
        name: "Arabic",
        html: r#"<div dir="rtl" lang="ar" class="p-8"><h1 class="text-2xl font-bold">فاتورة رقم 1234</h1>
<p class="mt-4">العميل شركة ACME للتجارة</p>
<p>المبلغ ٢٥٠ دينار</p>
<p>الإجمالي مع الضريبة ٢٨٧٫٥٠ دينار</p></div>"#,
        // The last line is drawn (no box) but not compared: pdftotext gives a lam-alef
        // ligature's two letters back swapped (it reverses a right-to-left word letter by
        // letter, a ligature's letters too), "الإجمالي" as "اإلجمالي".
        lines: &["فاتورة رقم 1234", "العميل شركة ACME للتجارة", "المبلغ ٢٥٠ دينار"],
        rtl: Some(("العميل", "ACME")),
    },
    Case {
        name: "Hebrew",
        html: r#"<div dir="rtl" lang="he" class="p-8"><h1 class="text-2xl font-bold">חשבונית מס 2024</h1>
<p class="mt-4">לכבוד חברת ACME בעמ</p>
<p>סך הכול לתשלום 1,250 שקלים</p></div>"#,
        lines: &["חשבונית מס 2024", "לכבוד חברת ACME בעמ", "סך הכול לתשלום 1,250 שקלים"],
        rtl: Some(("לכבוד", "ACME")),
    },
    Case {
        name: "Hindi",
        // Conjuncts: क्ष, त्र, श्र, द्य; a vowel sign drawn before its consonant (ि).
        html: r#"<div lang="hi" class="p-8"><h1 class="text-2xl font-bold">बिल संख्या 2024-15</h1>
<p class="mt-4">ग्राहक: श्री राम ट्रेडर्स, क्षेत्र मुंबई</p>
<p>पत्र, मित्र और विद्यालय की शिक्षा सामग्री</p>
<p class="font-semibold">कुल राशि: ₹12,500</p></div>"#,
        lines: &[
            "बिल संख्या 2024-15",
            "ग्राहक: श्री राम ट्रेडर्स, क्षेत्र मुंबई",
            "पत्र, मित्र और विद्यालय की शिक्षा सामग्री",
            "कुल राशि: ₹12,500",
        ],
        rtl: None,
    },
    Case {
        name: "Thai",
        html: r#"<div lang="th" class="p-8"><h1 class="text-2xl font-bold">ใบแจ้งหนี้ เลขที่ 2024-09</h1>
<p class="mt-4">เรียน บริษัท ตัวอย่าง จำกัด</p>
<p>ค่าบริการออกแบบเว็บไซต์ รวมทั้งสิ้น 45,000 บาท</p></div>"#,
        lines: &[
            "ใบแจ้งหนี้ เลขที่ 2024-09",
            "เรียน บริษัท ตัวอย่าง จำกัด",
            "ค่าบริการออกแบบเว็บไซต์ รวมทั้งสิ้น 45,000 บาท",
        ],
        rtl: None,
    },
    Case {
        name: "Greek and Cyrillic",
        html: r#"<div class="p-8"><h1 class="text-2xl font-bold">Τιμολόγιο αρ. 2024-31</h1>
<p class="mt-4">Πελάτης: Εταιρεία Δοκιμή Α.Ε., σύνολο 1.250,00 €</p>
<h1 class="mt-4 text-2xl font-bold">Счёт-фактура № 2024-31</h1>
<p class="mt-4">Покупатель: ООО «Пример», итого 15 000,00 ₽</p></div>"#,
        lines: &[
            "Τιμολόγιο αρ. 2024-31",
            "Πελάτης: Εταιρεία Δοκιμή Α.Ε., σύνολο 1.250,00 €",
            "Счёт-фактура № 2024-31",
            "Покупатель: ООО «Пример», итого 15 000,00 ₽",
        ],
        rtl: None,
    },
    Case {
        name: "emoji",
        // A ZWJ family, a skin tone, flags (regional-indicator pairs), a variation selector.
        html: r#"<div class="p-8"><p class="text-4xl">👨‍👩‍👧‍👦 👍🏽 🇯🇵 🇩🇪 🇺🇦 ❤️ 🎉</p>
<p class="mt-4">Thank you for your order! 🎉</p></div>"#,
        lines: &["👨‍👩‍👧‍👦 👍🏽 🇯🇵 🇩🇪 🇺🇦 ❤️ 🎉", "Thank you for your order! 🎉"],
        rtl: None,
    },
];

/// How many glyphs the emoji document draws from colour fonts: one for each sequence (the
/// family, the toned thumb, three flags, the heart, two party poppers), none for the text.
const EMOJI_GLYPHS: usize = 8;

/// The corpus through one engine, each document as it comes (Tailwind's preflight gives it
/// the default `font-sans` stack: system fonts of other platforms, 'Noto Sans', Arial,
/// sans-serif, the emoji fonts) and inside `font-serif` (Georgia, 'Times New Roman', serif):
/// the fallbacks of a sans and of a serif face.
#[tokio::test]
async fn every_common_script_prints() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
    let mut failures = Vec::new();
    for case in CORPUS {
        let serif = format!("<div class=\"font-serif\">{}</div>", case.html);
        for (variant, html) in [("sans", case.html), ("serif", serif.as_str())] {
            let r = engine
                .render(&spec(json!({"content": html, "pdfOptions": {"format": "A4"}})))
                .await
                .unwrap();
            let name = format!("{} ({variant})", case.name);
            failures
                .extend(check(case, variant, &r.pdf).into_iter().map(|f| format!("{name}: {f}")));
        }
    }
    // The right-to-left check can fail: the same lines laid out left to right do.
    let hebrew = CORPUS.iter().find(|c| c.name == "Hebrew").unwrap();
    let (first, later) = hebrew.rtl.unwrap();
    let ltr = hebrew.html.replace("dir=\"rtl\"", "dir=\"ltr\"");
    let r = engine.render(&spec(json!({"content": ltr}))).await.unwrap();
    let verdict = right_to_left(&r.pdf, first, later);
    assert!(
        verdict.as_ref().is_err_and(|e| e.contains("laid out left to right")),
        "a left-to-right line: {verdict:?}"
    );
    engine.shutdown(Duration::from_secs(5)).await;
    assert!(
        failures.is_empty(),
        "{} failures (scripts/setup.sh installs the fonts):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What is wrong with `pdf` as a rendering of `case`.
fn check(case: &Case, variant: &str, pdf: &[u8]) -> Vec<String> {
    let mut failures = Vec::new();
    let shown = glyphs_shown(pdf);
    let boxes: usize = shown.values().map(|gids| gids.iter().filter(|g| **g == 0).count()).sum();
    if boxes > 0 {
        let fonts: Vec<&String> =
            shown.iter().filter(|(_, gids)| gids.contains(&0)).map(|(font, _)| font).collect();
        failures.push(format!("{boxes} .notdef glyphs (boxes), in {fonts:?}"));
    }

    let text = poppler("pdftotext", pdf, &[]);
    let squeezed = squeeze(&text);
    let words = words(pdf);
    for line in case.lines {
        let found = if case.name == "emoji" {
            // Chromium's colour glyphs (Type 3) have boxes over twice the line's height, so
            // pdftotext's line building may file an emoji under the line above: each sequence
            // must come back whole, as a word, wherever it is filed.
            line.split_whitespace().all(|w| words.iter().any(|(t, _)| t == w))
        } else {
            squeezed.contains(&squeeze(line))
        };
        if !found {
            failures.push(format!("text {line:?} not in pdftotext's {text:?}"));
        }
    }

    let fonts = poppler("pdffonts", pdf, &[]);
    for row in fonts.lines().skip(2) {
        // name, type (one or two words), encoding, then emb sub uni and the object id.
        let cols: Vec<&str> = row.split_whitespace().collect();
        if cols.len() < 7 || cols[cols.len() - 5] != "yes" || cols[cols.len() - 3] != "yes" {
            failures.push(format!("a font not embedded with its ToUnicode map: {row}"));
        }
    }

    if let Some((first, later)) = case.rtl {
        if let Err(e) = right_to_left(pdf, first, later) {
            failures.push(e);
        }
    }

    if case.name == "Greek and Cyrillic" {
        // Tailwind's stacks, resolved: `font-sans` names 'Noto Sans' (fonts-noto-core) before
        // Arial; `font-serif` reaches 'Times New Roman', whose metric twin is Liberation Serif.
        let face = if variant == "sans" { "+NotoSans-Regular " } else { "+LiberationSerif " };
        if !shown.keys().any(|font| font.contains(face)) {
            failures.push(format!("no {face} among {:?}", shown.keys()));
        }
    }

    if case.name == "emoji" {
        let drawn: usize = shown
            .iter()
            .filter(|(font, _)| font.ends_with(COLOUR))
            .map(|(_, gids)| gids.len())
            .sum();
        if drawn != EMOJI_GLYPHS {
            failures.push(format!(
                "{drawn} colour glyphs, not one per emoji sequence ({EMOJI_GLYPHS}): {shown:?}"
            ));
        }
        // Each emoji's box has colour in it; the text is black on white, with none. Not the
        // family: Noto draws it in greys (its glyph count above shows it shaped as one).
        let (width, _, pixels) = common::ppm(&raster(pdf, DPI));
        let scale = f64::from(DPI) / 72.0;
        let emoji = words.iter().filter(|(t, _)| !t.is_ascii() && !t.contains('\u{200d}'));
        for (text, [x0, y0, x1, y1]) in emoji {
            // Boxes reach above the page's top: `as` takes a negative number to 0.
            let (x0, x1) = ((x0 * scale) as usize, (x1 * scale) as usize);
            let (y0, y1) = ((y0 * scale) as usize, (y1 * scale) as usize);
            let coloured = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (y * width + x) * 3))
                .filter(|at| {
                    let p = &pixels[*at..*at + 3];
                    p[0].abs_diff(p[1]) > 16 || p[1].abs_diff(p[2]) > 16
                })
                .count();
            // A flag of Japan, mostly white, has colour in 6% of its box.
            let area = (x1 - x0) * (y1 - y0);
            if coloured * 33 < area {
                failures.push(format!("{text} is not in colour: {coloured} of {area} pixels"));
            }
        }
        if !words.iter().any(|(t, _)| !t.is_ascii()) {
            failures.push(String::from("no emoji among pdftotext's words"));
        }
    }
    failures
}

/// The emoji raster's resolution.
const DPI: u32 = 96;

/// `text` without whitespace and without the bidi controls pdftotext wraps right-to-left
/// lines and the numbers and Latin words in them with (RLE, LRE, PDF).
fn squeeze(text: &str) -> String {
    text.chars()
        .filter(|c| {
            !c.is_whitespace() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// pdftotext's words with their boxes (xMin, yMin, xMax, yMax, in points from the top left).
/// A right-to-left word's letters come in the order they lie on the page, left to right.
fn words(pdf: &[u8]) -> Vec<(String, [f64; 4])> {
    let html = poppler("pdftotext", pdf, &["-bbox"]);
    html.split("<word ")
        .skip(1)
        .map(|w| {
            let (attrs, rest) = w.split_once('>').unwrap();
            let attr = |name: &str| -> f64 {
                let start = attrs.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                attrs[start..].split('"').next().unwrap().parse().unwrap()
            };
            let text = rest.split("</word>").next().unwrap();
            (text.to_owned(), [attr("xMin"), attr("yMin"), attr("xMax"), attr("yMax")])
        })
        .collect()
}

/// Whether `first`, a word that starts a right-to-left line, lies right of `later` (a number or
/// Latin word after it in logical order) on one line of the page, and whether pdftotext gives
/// the line back in logical order (it reverses lines it finds to be right to left). Laid out
/// left to right, `later` would lie right of `first`: the Hebrew or Arabic words run right to
/// left among themselves either way, but the line's runs follow one another left to right.
fn right_to_left(pdf: &[u8], first: &str, later: &str) -> Result<(), String> {
    let words = words(pdf);
    let on_page: String = first.chars().rev().collect();
    let find = |text: &str| {
        words
            .iter()
            .find(|(t, _)| t == text)
            .map(|(_, b)| *b)
            .ok_or_else(|| format!("no word {text:?} among {words:?}"))
    };
    let (a, b) = (find(&on_page)?, find(later)?);
    if (a[1] - b[1]).abs() > 3.0 {
        return Err(format!("{first:?} {a:?} and {later:?} {b:?} are not on one line"));
    }
    if a[0] <= b[2] {
        return Err(format!(
            "{first:?} {a:?} is not right of {later:?} {b:?}: laid out left to right"
        ));
    }
    let text = poppler("pdftotext", pdf, &[]);
    let line = text.lines().map(squeeze).find(|l| l.contains(first)).unwrap_or_default();
    match (line.find(first), line.find(later)) {
        (Some(i), Some(j)) if i < j => Ok(()),
        _ => Err(format!("pdftotext's line {line:?} does not read {first:?} before {later:?}")),
    }
}

/// The name suffix of fonts whose glyphs are pictures: Chromium writes a colour font (Noto
/// Color Emoji's bitmaps) as a Type 3 font whose glyphs draw images.
const COLOUR: &str = "(Type3, images)";

/// The glyph ids each font shows on the pages, by a name for the font (its BaseFont and
/// type, or its object id for the nameless Type 3 fonts Chromium writes). Type 0 fonts: the
/// two-byte CIDs mapped through CIDToGIDMap; Type 3 fonts: each code's name in the encoding's
/// Differences, Chromium's `g<hex glyph id>`. Any other kind fails the test: it would need
/// reading too.
fn glyphs_shown(pdf: &[u8]) -> BTreeMap<String, Vec<u32>> {
    let doc = Document::load_mem(pdf).unwrap();
    let mut shown = BTreeMap::new();
    for page in doc.get_pages().into_values() {
        let (direct, ids) = doc.get_page_resources(page).unwrap();
        let resources = direct.cloned().unwrap_or_else(|| {
            ids.first().map(|id| doc.get_dictionary(*id).unwrap().clone()).unwrap_or_default()
        });
        walk(&doc, &doc.get_page_content(page), &resources, &mut shown, 0);
    }
    shown
}

fn walk(
    doc: &Document,
    content: &[u8],
    resources: &Dictionary,
    shown: &mut BTreeMap<String, Vec<u32>>,
    depth: usize,
) {
    assert!(depth < 16, "form XObjects nest too deep");
    let lookup = |kind: &[u8], name: &[u8]| -> ObjectId {
        let (_, category) = doc.dereference(resources.get(kind).unwrap()).unwrap();
        category.as_dict().unwrap().get(name).unwrap().as_reference().unwrap()
    };
    // The font is part of the graphics state: q saves it, Q restores it.
    let mut fonts: Vec<Option<ObjectId>> = vec![None];
    for op in Content::decode(content).unwrap().operations {
        match op.operator.as_str() {
            "q" => fonts.push(*fonts.last().unwrap()),
            "Q" if fonts.len() > 1 => {
                fonts.pop();
            }
            "Tf" => {
                *fonts.last_mut().unwrap() =
                    Some(lookup(b"Font", op.operands[0].as_name().unwrap()))
            }
            "Tj" | "TJ" | "'" | "\"" => {
                let font = fonts.last().unwrap().expect("text shown with no font");
                let (name, gids) = decode(doc, font, &op.operands);
                shown.entry(name).or_default().extend(gids);
            }
            "Do" => {
                let id = lookup(b"XObject", op.operands[0].as_name().unwrap());
                let stream = doc.get_object(id).unwrap().as_stream().unwrap();
                if stream.dict.get(b"Subtype").unwrap().as_name().unwrap() == b"Form" {
                    let inner = match stream.dict.get(b"Resources") {
                        Ok(r) => doc.dereference(r).unwrap().1.as_dict().unwrap().clone(),
                        Err(_) => resources.clone(),
                    };
                    let bytes = stream.decompressed_content().unwrap_or(stream.content.clone());
                    walk(doc, &bytes, &inner, shown, depth + 1);
                }
            }
            _ => {}
        }
    }
}

/// The font's name and the glyph ids of the strings among `operands`.
fn decode(doc: &Document, font: ObjectId, operands: &[Object]) -> (String, Vec<u32>) {
    let dict = doc.get_dictionary(font).unwrap();
    let mut bytes = Vec::new();
    for operand in operands {
        match operand {
            Object::String(s, _) => bytes.extend_from_slice(s),
            Object::Array(items) => {
                for item in items {
                    if let Object::String(s, _) = item {
                        bytes.extend_from_slice(s);
                    }
                }
            }
            _ => {}
        }
    }
    let subtype = dict.get(b"Subtype").unwrap().as_name().unwrap();
    match subtype {
        b"Type0" => {
            let base = String::from_utf8_lossy(dict.get(b"BaseFont").unwrap().as_name().unwrap());
            assert_eq!(dict.get(b"Encoding").unwrap().as_name().unwrap(), b"Identity-H");
            let descendant = match dict.get(b"DescendantFonts").unwrap() {
                Object::Array(items) => doc.dereference(&items[0]).unwrap().1.as_dict().unwrap(),
                other => panic!("DescendantFonts {other:?}"),
            };
            // Identity (or none): the CID is the glyph id; a stream: two bytes per CID.
            let map = match descendant.get(b"CIDToGIDMap") {
                Ok(Object::Name(n)) if n == b"Identity" => None,
                Err(_) => None,
                Ok(m) => {
                    let stream = doc.dereference(m).unwrap().1.as_stream().unwrap();
                    Some(stream.decompressed_content().unwrap_or(stream.content.clone()))
                }
            };
            assert_eq!(bytes.len() % 2, 0, "a Type 0 font's string of odd length");
            let gids = bytes
                .chunks_exact(2)
                .map(|c| {
                    let cid = usize::from(u16::from_be_bytes([c[0], c[1]]));
                    match &map {
                        None => cid as u32,
                        Some(m) => u32::from(u16::from_be_bytes([m[2 * cid], m[2 * cid + 1]])),
                    }
                })
                .collect();
            (format!("{base} (Type0)"), gids)
        }
        b"Type3" => {
            let encoding = doc.dereference(dict.get(b"Encoding").unwrap()).unwrap().1;
            let differences = match encoding.as_dict().unwrap().get(b"Differences").unwrap() {
                Object::Array(items) => items,
                other => panic!("Differences {other:?}"),
            };
            let mut names = BTreeMap::new();
            let mut code = 0;
            for item in differences {
                match item {
                    Object::Integer(n) => code = *n,
                    Object::Name(n) => {
                        names.insert(code, n.clone());
                        code += 1;
                    }
                    other => panic!("in Differences: {other:?}"),
                }
            }
            let gids = bytes
                .iter()
                .map(|b| {
                    let name = &names[&i64::from(*b)];
                    let hex = name.strip_prefix(b"g").expect("a glyph name g<hex>");
                    u32::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).unwrap()
                })
                .collect();
            let images = dict
                .get(b"Resources")
                .and_then(|r| doc.dereference(r))
                .and_then(|(_, r)| r.as_dict())
                .is_ok_and(|r| r.has(b"XObject"));
            let kind = if images { COLOUR } else { "(Type3)" };
            (format!("object {} {kind}", font.0), gids)
        }
        other => panic!("a font of a kind not read here: {}", String::from_utf8_lossy(other)),
    }
}

//! `pdfOptions` (Puppeteer's names) as Chromium's `Page.printToPDF` parameters, and the print
//! itself, within the page and byte limits.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chromiumoxide::cdp::browser_protocol::{
    io::{CloseParams as IoCloseParams, ReadParams},
    page::{PrintToPdfParams, PrintToPdfTransferMode},
};
use tailpdf_shared::pdf_options::PdfOptions;

use super::{cdp::cdp_error, prints::Prints, target::Target};
use crate::error::{LimitExceeded, RenderError};

/// The print parameters for `options`. `template_css` is the Tailwind CSS of the header and
/// footer templates: Chromium renders them apart from the page, without its styles.
pub fn print_params(
    options: &PdfOptions,
    template_css: &str,
) -> Result<PrintToPdfParams, RenderError> {
    let g = options.validate().map_err(RenderError::BadInput)?;
    let with_css = |template: &Option<String>| {
        template.as_ref().map(|t| {
            if template_css.is_empty() || t.is_empty() {
                t.clone()
            } else {
                format!("{}{t}", super::document::style_element(template_css, None))
            }
        })
    };
    Ok(PrintToPdfParams {
        landscape: options.landscape,
        display_header_footer: options.display_header_footer,
        print_background: options.print_background,
        scale: options.scale,
        paper_width: Some(g.width),
        paper_height: Some(g.height),
        margin_top: Some(g.margin_top),
        margin_bottom: Some(g.margin_bottom),
        margin_left: Some(g.margin_left),
        margin_right: Some(g.margin_right),
        page_ranges: options.page_ranges.clone().filter(|r| !r.trim().is_empty()),
        header_template: with_css(&options.header_template),
        footer_template: with_css(&options.footer_template),
        prefer_css_page_size: options.prefer_css_page_size,
        transfer_mode: None,
        // On unless turned off: accessible and navigable by default, at a cost measured in
        // BENCHMARKS.md (post-processing section).
        generate_tagged_pdf: Some(options.tagged.unwrap_or(true)),
        generate_document_outline: Some(options.outline.unwrap_or(true)),
    })
}

/// Prints `page` within `max_pages` and `max_bytes`. Without page ranges of the caller's,
/// Chromium is asked for one page past the limit, so a document of a million pages costs its
/// layout but never a million pages of PDF; either way the PDF is counted as it streams in.
/// The print is one of `prints` while it runs: abandoned (the render's deadline), its
/// compositor is stopped.
pub(crate) async fn print(
    target: &Target,
    prints: &Prints,
    mut params: PrintToPdfParams,
    max_pages: u32,
    max_bytes: u64,
) -> Result<Vec<u8>, RenderError> {
    params.transfer_mode = Some(PrintToPdfTransferMode::ReturnAsStream);
    let caller_ranges = params.page_ranges.is_some();
    if !caller_ranges {
        params.page_ranges = Some(format!("1-{}", u64::from(max_pages) + 1));
    }
    let page = &target.page;
    let printing = prints.start(target.page_process(), target.render_begun());
    let response = page.execute(params).await.map_err(|e| match e {
        chromiumoxide::error::CdpError::Chrome(ref c) if c.code == -32000 => {
            print_error(&c.message, caller_ranges)
        }
        other => cdp_error(other),
    });
    // Answered, one way or the other: its compositor is done.
    printing.done();
    let response = response?;
    let Some(handle) = response.result.stream.clone() else {
        let data: &str = response.result.data.as_ref();
        let pdf =
            BASE64.decode(data).map_err(|e| RenderError::Browser(format!("bad PDF data: {e}")))?;
        return within_limits(pdf, max_pages, max_bytes);
    };
    let mut pdf = Vec::new();
    let read = async {
        loop {
            let mut read = ReadParams::new(handle.clone());
            read.size = Some(8 * 1024 * 1024);
            let chunk = page.execute(read).await.map_err(cdp_error)?.result;
            if chunk.base64_encoded.unwrap_or(false) {
                pdf.extend(
                    BASE64.decode(&chunk.data).map_err(|e| RenderError::Browser(e.to_string()))?,
                );
            } else {
                pdf.extend_from_slice(chunk.data.as_bytes());
            }
            if pdf.len() as u64 > max_bytes {
                return Err(LimitExceeded::PdfBytes(max_bytes).into());
            }
            if chunk.eof {
                return Ok::<(), RenderError>(());
            }
        }
    };
    let result = read.await;
    let _ = page.execute(IoCloseParams::new(handle)).await;
    result?;
    within_limits(pdf, max_pages, max_bytes)
}

/// What Chromium's refusal to print means: the caller's page ranges, if they are what it
/// names, or a document it could not print.
fn print_error(message: &str, caller_ranges: bool) -> RenderError {
    if caller_ranges && message.to_ascii_lowercase().contains("page range") {
        return RenderError::BadInput(format!("`pdfOptions.pageRanges`: {message}."));
    }
    RenderError::PrintFailed(message.trim_end_matches('.').to_owned())
}

fn within_limits(pdf: Vec<u8>, max_pages: u32, max_bytes: u64) -> Result<Vec<u8>, RenderError> {
    if pdf.len() as u64 > max_bytes {
        return Err(LimitExceeded::PdfBytes(max_bytes).into());
    }
    if page_count(&pdf) > max_pages as usize {
        return Err(LimitExceeded::Pages(max_pages).into());
    }
    Ok(pdf)
}

/// Pages of a PDF as Chromium (Skia) writes it: one `/Type /Page` dictionary each, never in
/// compressed object streams.
pub(crate) fn page_count(pdf: &[u8]) -> usize {
    const NEEDLE: &[u8] = b"/Type /Page";
    pdf.windows(NEEDLE.len() + 1)
        .filter(|w| w.starts_with(NEEDLE) && !w[NEEDLE.len()].is_ascii_alphanumeric())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: &str) -> PdfOptions {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn puppeteer_names_map_to_print_parameters() {
        let p = print_params(
            &opts(
                r#"{"format":"A4","landscape":true,"printBackground":true,"scale":0.5,
                "margin":{"top":"1in","left":"96px"},"pageRanges":"1-2","preferCSSPageSize":true,
                "displayHeaderFooter":true,"footerTemplate":"<p class=\"text-xs\">x</p>","tagged":true,"outline":true}"#,
            ),
            ".text-xs{font-size:.75rem}",
        )
        .unwrap();
        assert_eq!((p.paper_width, p.paper_height), (Some(8.2677), Some(11.6929)));
        assert_eq!((p.landscape, p.print_background, p.scale), (Some(true), Some(true), Some(0.5)));
        assert_eq!(
            (p.margin_top, p.margin_left, p.margin_right),
            (Some(1.0), Some(1.0), Some(0.0))
        );
        assert_eq!(p.page_ranges.as_deref(), Some("1-2"));
        assert_eq!(
            p.footer_template.as_deref(),
            Some("<style>.text-xs{font-size:.75rem}</style><p class=\"text-xs\">x</p>")
        );
        assert_eq!(p.header_template, None);
        assert_eq!((p.generate_tagged_pdf, p.generate_document_outline), (Some(true), Some(true)));
    }

    #[test]
    fn tagged_and_outline_are_on_unless_turned_off() {
        let p = print_params(&opts("{}"), "").unwrap();
        assert_eq!((p.generate_tagged_pdf, p.generate_document_outline), (Some(true), Some(true)));
        let p = print_params(&opts(r#"{"tagged":false,"outline":false}"#), "").unwrap();
        assert_eq!(
            (p.generate_tagged_pdf, p.generate_document_outline),
            (Some(false), Some(false))
        );
    }

    #[test]
    fn pages_are_counted_and_pages_trees_are_not() {
        let pdf = b"<</Type /Pages /Kids [3 0 R 4 0 R] /Count 2>> <</Type /Page /Parent 2 0 R>> \
                    <</Type /Page\n/Parent 2 0 R>> <</Type /PageLabel>>";
        assert_eq!(page_count(pdf), 2);
        assert_eq!(page_count(b"%PDF-1.4"), 0);
        assert!(matches!(
            within_limits(pdf.to_vec(), 1, 1 << 20),
            Err(RenderError::Limit(LimitExceeded::Pages(1)))
        ));
        assert!(matches!(
            within_limits(pdf.to_vec(), 5, 10),
            Err(RenderError::Limit(LimitExceeded::PdfBytes(10)))
        ));
        assert!(within_limits(pdf.to_vec(), 2, 1 << 20).is_ok());
    }

    #[test]
    fn templates_get_their_css_in_a_style_element_that_cannot_be_closed() {
        let p = print_params(
            &opts(r#"{"displayHeaderFooter":true,"headerTemplate":"<p>h</p>"}"#),
            ".x{content:'</style><script>x()</script>'}",
        )
        .unwrap();
        let header = p.header_template.unwrap();
        assert!(header.ends_with("</style><p>h</p>") && !header.contains("'</"), "{header}");
    }

    #[test]
    fn a_failed_print_is_a_render_failure_unless_the_caller_s_page_ranges_caused_it() {
        let ranges = print_error("Page range exceeds page count", true);
        assert!(
            matches!(&ranges, RenderError::BadInput(m) if m.starts_with("`pdfOptions.pageRanges`")),
            "{ranges:?}"
        );
        for caller_ranges in [false, true] {
            let failed = print_error("Printing failed", caller_ranges);
            assert!(matches!(failed, RenderError::PrintFailed(_)), "{failed:?}");
            let api = failed.to_api_error();
            assert_eq!((api.status(), api.code), (500, tailpdf_shared::ErrorCode::RenderFailed));
            assert!(!api.message.contains("pageRanges"), "{}", api.message);
            assert!(api.message.contains("could not print"), "{}", api.message);
            assert!(!failed.retryable(), "the same document fails the same way");
        }
    }

    #[test]
    fn invalid_options_are_bad_input() {
        let e = print_params(&opts(r#"{"format":"B7"}"#), "").unwrap_err();
        assert!(matches!(e, RenderError::BadInput(m) if m.starts_with("`pdfOptions.format`")));
    }
}

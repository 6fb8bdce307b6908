//! `pdfOptions` (Puppeteer's names) as Chromium's `Page.printToPDF` parameters.

use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use tailpdf_shared::pdf_options::PdfOptions;

use crate::error::RenderError;

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
                format!("<style>{template_css}</style>{t}")
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
        generate_tagged_pdf: options.tagged,
        generate_document_outline: options.outline,
    })
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
    fn invalid_options_are_bad_input() {
        let e = print_params(&opts(r#"{"format":"B7"}"#), "").unwrap_err();
        assert!(matches!(e, RenderError::BadInput(m) if m.starts_with("`pdfOptions.format`")));
    }
}

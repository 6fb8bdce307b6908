//! The post-processing stage: what happens to Chromium's PDF before it leaves the renderer,
//! for sync renders and jobs alike, under a deadline of its own (`--postprocess-timeout`).
//!
//! Steps, in order: [`metadata`] (every PDF: the Info dictionary and XMP, `tailpdf` as
//! producer), [`pdfa`] (`pdfOptions.pdfa`), [`encrypt`] (`pdfOptions.password`, by qpdf).
//! The first two edit one parsed document (lopdf); encryption comes last, on the finished
//! bytes. The options were checked by `tailpdf_shared::postprocess` at the edge.

mod encrypt;
pub mod metadata;
mod pdfa;

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

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

/// The steps that edit the document: parsed once (unless it comes parsed), written once.
/// The document's parse and write count as the metadata step's, which every PDF has.
fn edit(
    pdf: Pdf,
    given: Option<&Metadata>,
    pdfa: Option<PdfA>,
    now: Timestamp,
) -> Result<(Vec<u8>, Vec<Step>), RenderError> {
    let started = Instant::now();
    // What the PDF/A file identifier is made from: the file as it came, or for a parsed
    // document random bytes (the identifier need only be its own).
    let (mut doc, original) = match pdf {
        Pdf::Bytes(bytes) => {
            let doc = lopdf::Document::load_mem(&bytes).map_err(|e| failed("metadata", e))?;
            (doc, bytes)
        }
        Pdf::Parsed(doc) => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| failed("pdfa", e))?;
            (*doc, seed.to_vec())
        }
    };
    let pdf = original.as_slice();
    let fields = metadata::Fields::new(given, &doc, now).map_err(|e| failed("metadata", e))?;
    metadata::apply(&mut doc, &fields, pdfa).map_err(|e| failed("metadata", e))?;
    let pdfa_took = match pdfa {
        Some(_) => {
            let t = Instant::now();
            pdfa::apply(&mut doc, pdf).map_err(|e| failed("pdfa", e))?;
            Some(t.elapsed())
        }
        None => None,
    };
    let mut out = Vec::with_capacity(pdf.len().max(64 * 1024) + 16 * 1024);
    doc.save_to(&mut out).map_err(|e| failed("metadata", e))?;
    let metadata_took = started.elapsed().saturating_sub(pdfa_took.unwrap_or_default());
    let mut steps = vec![Step { name: "metadata", took: metadata_took }];
    steps.extend(pdfa_took.map(|took| Step { name: "pdfa", took }));
    Ok((out, steps))
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

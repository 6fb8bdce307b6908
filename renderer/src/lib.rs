//! The tailpdf renderer: Chromium turns HTML + Tailwind into PDFs (issue #3), served over HTTP
//! and fed from the render-jobs queue (issue #4).

//! `tailpdf-renderer`: the render backend's command line.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tailpdf_renderer::{config::EngineConfig, engine::Engine};
use tailpdf_shared::{pdf_options::PdfOptions, request::PdfRequest};

#[derive(Parser)]
#[command(version, about = "tailpdf's render backend: HTML + Tailwind to PDF through Chromium")]
struct Cli {
    /// Log format.
    #[arg(long, env = "TAILPDF_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Render one document to a PDF, without a server.
    Render(Box<RenderArgs>),
    /// Run the render service for the edge: HTTP API, push and pull job sources.
    Serve(Box<tailpdf_renderer::service::ServeConfig>),
}

#[derive(clap::Args)]
struct RenderArgs {
    /// The HTML: a fragment (wrapped in a document) or a whole document; `-` for stdin.
    #[arg(long, short)]
    input: PathBuf,
    /// Where the PDF goes; `-` for stdout.
    #[arg(long, short)]
    output: PathBuf,
    /// A Google Fonts family spec, e.g. `Inter:wght@400;600` (repeatable).
    #[arg(long = "font")]
    fonts: Vec<String>,
    /// A JSON file with the Tailwind config (v3-style object: theme.extend, darkMode, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// pdfOptions as JSON, Puppeteer's names, e.g. '{"format":"A4","printBackground":true}'.
    #[arg(long)]
    options: Option<String>,
    #[command(flatten)]
    engine: EngineConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: no async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Render(args) => render(*args).await,
            Command::Serve(cfg) => serve(*cfg).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(cfg: tailpdf_renderer::service::ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tailpdf_renderer::service::run(cfg, listener, tailpdf_renderer::service::signal()).await
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAILPDF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tailpdf_renderer=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn render(args: RenderArgs) -> anyhow::Result<()> {
    let content = if args.input.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading the HTML from stdin")?;
        s
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("reading {}", args.input.display()))?
    };
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a JSON object", path.display()))?,
            )
        }
        None => None,
    };
    let pdf_options: Option<PdfOptions> = match &args.options {
        Some(json) => {
            Some(serde_json::from_str(json).context("--options is not valid pdfOptions")?)
        }
        None => None,
    };
    let request = PdfRequest {
        content: Some(content),
        fonts: (!args.fonts.is_empty()).then_some(args.fonts),
        config,
        pdf_options,
        ..PdfRequest::default()
    };
    let spec =
        request.validate(args.engine.url_policy()).map_err(|e| anyhow::anyhow!(e.message))?.spec;

    let engine = Engine::start(args.engine).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = engine.render(&spec).await;
    engine.shutdown(Duration::from_secs(5)).await;
    let rendered = result.map_err(|e| anyhow::anyhow!(e.to_api_error().message))?;
    for problem in &rendered.problems {
        eprintln!("warning: not loaded: {problem}");
    }
    if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(&rendered.pdf).context("writing the PDF to stdout")?;
    } else {
        std::fs::write(&args.output, &rendered.pdf)
            .with_context(|| format!("writing {}", args.output.display()))?;
    }
    tracing::info!(
        bytes = rendered.pdf.len(),
        ms = rendered.duration.as_millis() as u64,
        postprocess = %rendered
            .steps
            .iter()
            .map(|s| format!("{}:{:.1}ms", s.name, s.took.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(","),
        "rendered"
    );
    Ok(())
}

//! `tailpdf-admin`: see `--help`, and docs/DEPLOY.md, "API keys".

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tailpdf_admin::{
    accounts::{Admin, KeyRef},
    kv::{Location, Wrangler},
};
use tailpdf_edge::store::Limits;

/// API keys, webhook secrets and account limits of a tailpdf edge, in its `API_KEYS` KV
/// namespace, through wrangler. Local development storage by default (what `wrangler dev`
/// reads); `--remote` for the deployed Worker. Keys and secrets are printed once, on stdout.
#[derive(Parser)]
#[command(name = "tailpdf-admin", version)]
struct Cli {
    /// Write to the deployed namespace (wrangler's login or CLOUDFLARE_API_TOKEN), not local
    /// development storage.
    #[arg(long, global = true, env = "TAILPDF_ADMIN_REMOTE")]
    remote: bool,
    /// Local storage's directory: `wrangler dev --persist-to`'s (`make dev`: .dev/wrangler).
    #[arg(long, global = true, env = "TAILPDF_ADMIN_PERSIST_TO", conflicts_with = "remote")]
    persist_to: Option<PathBuf>,
    /// The wrangler.toml that names the binding (wrangler's default: the one in the current
    /// directory).
    #[arg(long, global = true, env = "TAILPDF_ADMIN_CONFIG")]
    config: Option<PathBuf>,
    /// The KV binding of the API keys.
    #[arg(long, global = true, default_value = "API_KEYS", env = "TAILPDF_ADMIN_BINDING")]
    binding: String,
    /// The wrangler program.
    #[arg(long, global = true, default_value = "wrangler", env = "TAILPDF_ADMIN_WRANGLER")]
    wrangler: PathBuf,
    /// Deadline of each wrangler call or call to the edge, in seconds.
    #[arg(long, global = true, default_value_t = 60, env = "TAILPDF_ADMIN_TIMEOUT_SECS")]
    timeout_secs: u64,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// API keys: create, revoke, rotate, list.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Accounts: webhook secret, limits, what is set.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Webhooks whose every retry failed: list, replay (through the edge, not KV).
    DeadLetters {
        /// The edge's origin (`make dev`: http://127.0.0.1:8787).
        #[arg(long, env = "TAILPDF_EDGE_URL")]
        edge_url: String,
        /// The Worker's ADMIN_SECRET.
        #[arg(long, env = "TAILPDF_EDGE_ADMIN_SECRET", hide_env_values = true)]
        admin_secret: String,
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Every dead-lettered webhook kept (DEAD_LETTER_TTL_SECS), oldest first.
    List,
    /// Sends the given webhooks again, each with its own webhook-id and body, one attempt
    /// each (a failure dead-letters it again); the job's `webhook` object records it.
    Replay {
        /// The webhook-ids to replay, as `list` shows them.
        #[arg(required_unless_present = "all")]
        webhook_ids: Vec<String>,
        /// Every one listed.
        #[arg(long, conflicts_with = "webhook_ids")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// A new API key for ACCOUNT, printed once (only its SHA-256 is stored). An account
    /// without a record gets one, with a new webhook secret, printed once too.
    Create {
        #[arg(long)]
        account: String,
        /// Use this key instead of a generated one (e.g. to move an existing key).
        #[arg(long, env = "TAILPDF_ADMIN_KEY", hide_env_values = true)]
        key: Option<String>,
        /// A new account's webhook secret instead of a generated one (ignored when the
        /// account exists: see `account secret`).
        #[arg(long, env = "TAILPDF_ADMIN_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
    },
    /// Deletes a key: the Worker answers 401 to it from its next read of KV (at once on
    /// `wrangler dev`; within about a minute at every Cloudflare location).
    Revoke(Which),
    /// A new key for the same account, printed once; the old key is revoked.
    Rotate {
        #[command(flatten)]
        which: Which,
        /// Keep the old key working (revoke it once the customer has switched).
        #[arg(long)]
        keep_old: bool,
    },
    /// Every key's hash and account, with the limits it carries.
    List {
        #[arg(long)]
        account: Option<String>,
    },
}

/// A key, by its value or by its hash.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// The key itself.
    #[arg(long, env = "TAILPDF_ADMIN_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The key's SHA-256 in hex, as `key list` shows it.
    #[arg(long)]
    hash: Option<String>,
}

impl Which {
    fn key_ref(self) -> KeyRef {
        match (self.key, self.hash) {
            (Some(key), _) => KeyRef::Value(key),
            (None, hash) => KeyRef::Hash(hash.unwrap_or_default()),
        }
    }
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Sets a new webhook secret for ACCOUNT, printed once: every delivery is signed with it
    /// from now on (have the receiver accept both for a few minutes).
    Secret {
        #[arg(long)]
        account: String,
        /// Use this secret instead of a generated one.
        #[arg(long, env = "TAILPDF_ADMIN_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Sets ACCOUNT's limits (0: no limit; a limit not given is left as it is), in its record
    /// and in each of its keys.
    Limits {
        #[arg(long)]
        account: String,
        /// `POST /pdf` requests a minute.
        #[arg(long)]
        requests_per_minute: Option<u32>,
        /// Async jobs accepted and not yet ended.
        #[arg(long)]
        jobs_in_flight: Option<u32>,
    },
    /// ACCOUNT's limits, whether it has a webhook secret, and its keys' hashes.
    Show {
        #[arg(long)]
        account: String,
    },
}

fn limits_text(limits: Limits) -> String {
    let show = |v: Option<u32>| match v {
        None => String::from("the Worker's default"),
        Some(0) => String::from("none"),
        Some(n) => n.to_string(),
    };
    format!(
        "requests per minute: {}; jobs in flight: {}",
        show(limits.requests_per_minute),
        show(limits.jobs_in_flight)
    )
}

fn dead_letters(
    edge: tailpdf_admin::edge::EdgeAdmin,
    command: DeadLetterCommand,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        match command {
            DeadLetterCommand::List => {
                for d in edge.dead_letters().await.context("dead-letters list")? {
                    println!(
                        "{}  {}  {}  {} attempts  dead at {}  {}",
                        d.webhook_id, d.account, d.event, d.attempts, d.dead_at, d.url
                    );
                }
            }
            DeadLetterCommand::Replay { webhook_ids, all } => {
                let ids = if all {
                    let listed = edge.dead_letters().await.context("dead-letters list")?;
                    listed.into_iter().map(|d| d.webhook_id).collect()
                } else {
                    webhook_ids
                };
                let outcome = edge.replay(ids).await.context("dead-letters replay")?;
                for id in &outcome.replayed {
                    println!("replayed {id}");
                }
                for id in &outcome.not_found {
                    eprintln!("not found (replayed before, or expired): {id}");
                }
            }
        }
        Ok(())
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let timeout = Duration::from_secs(cli.timeout_secs);
    let location =
        if cli.remote { Location::Remote } else { Location::Local { persist_to: cli.persist_to } };
    let admin = Admin {
        store: Wrangler {
            program: cli.wrangler,
            config: cli.config,
            binding: cli.binding,
            location,
            timeout,
        },
    };
    match cli.command {
        Top::DeadLetters { edge_url, admin_secret, command } => {
            let edge =
                tailpdf_admin::edge::EdgeAdmin { url: edge_url, secret: admin_secret, timeout };
            dead_letters(edge, command)?;
        }
        Top::Key(KeyCommand::Create { account, key, webhook_secret }) => {
            let created = admin.create_key(&account, key, webhook_secret).context("key create")?;
            eprintln!("API key for account {account} (shown once; only its hash is stored):");
            println!("{}", created.key);
            if let Some(secret) = created.webhook_secret {
                eprintln!("New account {account}: its webhook secret (shown once):");
                println!("{secret}");
            }
        }
        Top::Key(KeyCommand::Revoke(which)) => {
            let account = admin.revoke_key(&which.key_ref()).context("key revoke")?;
            eprintln!("Revoked a key of account {account}.");
        }
        Top::Key(KeyCommand::Rotate { which, keep_old }) => {
            let key = admin.rotate_key(&which.key_ref(), keep_old).context("key rotate")?;
            let old = if keep_old { "kept: revoke it later" } else { "revoked" };
            eprintln!("New API key (shown once); the old one is {old}:");
            println!("{key}");
        }
        Top::Key(KeyCommand::List { account }) => {
            for (hash, record) in admin.list_keys(account.as_deref()).context("key list")? {
                println!("{hash}  {}  {}", record.account, limits_text(record.limits));
            }
        }
        Top::Account(AccountCommand::Secret { account, secret }) => {
            let secret = admin.set_webhook_secret(&account, secret).context("account secret")?;
            eprintln!("Webhook secret of account {account} (shown once):");
            println!("{secret}");
        }
        Top::Account(AccountCommand::Limits { account, requests_per_minute, jobs_in_flight }) => {
            let change = Limits { requests_per_minute, jobs_in_flight };
            let (now, keys) = admin.set_limits(&account, change).context("account limits")?;
            eprintln!("Account {account}: {} ({keys} keys).", limits_text(now));
        }
        Top::Account(AccountCommand::Show { account }) => {
            let record = admin
                .account(&account)
                .context("account show")?
                .with_context(|| format!("no account {account}"))?;
            println!("account: {}", record.account);
            println!(
                "webhook secret: {}",
                if record.webhook_secret.is_some() {
                    "set"
                } else {
                    "none: webhooks go out unsigned"
                }
            );
            println!("{}", limits_text(record.limits));
            for (hash, _) in admin.list_keys(Some(&account)).context("account show")? {
                println!("key: {hash}");
            }
        }
    }
    Ok(())
}

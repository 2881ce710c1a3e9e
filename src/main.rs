//! The `facecv` command line: nothing but argument parsing and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use facecv::{App, Config};

#[derive(Parser)]
#[command(
    name = "facecv",
    version,
    about = "FaceCV Edge: on-device face recognition with durable webhook delivery"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance (without --config: the embedded default, everything on this machine).
    Serve {
        #[arg(long, env = "FACECV_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a config file, and the store it points at if one exists, then exit.
    CheckConfig {
        #[arg(long, env = "FACECV_CONFIG")]
        config: PathBuf,
    },
    /// Find the faces in an image.
    Detect {
        image: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "FACECV_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Find and name the faces in an image, against the store's enrolled people.
    Recognize {
        image: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long, env = "FACECV_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Copy what is readable of a damaged store into a new one, table by table; the old file is
    /// kept and nothing is written to it. Stop the service first.
    Salvage {
        /// The damaged database (`<storage.dir>/facecv.db`).
        #[arg(long)]
        from: PathBuf,
        /// The new database; must not exist. Point `storage.dir` at its folder afterwards.
        #[arg(long)]
        to: PathBuf,
    },
    /// Enrol every person of a folder laid out DIR/<name>/*.jpg.
    Enroll {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, env = "FACECV_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Print the SHA-256 fingerprint of the HTTPS certificate (as browsers show it), read from
    /// api.tls_cert or the one made in storage.dir on the first start.
    TlsFingerprint {
        #[arg(long, env = "FACECV_CONFIG")]
        config: Option<PathBuf>,
        /// Make the self-signed certificate first when there is none yet, as `serve` would (the SD
        /// image's first boot shows the fingerprint before the service has ever started).
        #[arg(long)]
        create: bool,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve(config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Detect {
            image,
            json,
            config,
        } => load(config.as_ref()).and_then(|c| facecv::cmds::detect(&c, &image, json)),
        Command::Recognize {
            image,
            json,
            config,
        } => load(config.as_ref()).and_then(|c| facecv::cmds::recognize(&c, &image, json)),
        Command::Salvage { from, to } => facecv::cmds::salvage(&from, &to),
        Command::Enroll { dir, config } => {
            load(config.as_ref()).and_then(|c| facecv::cmds::enroll(&c, &dir))
        }
        Command::TlsFingerprint { config, create } => {
            load(config.as_ref()).and_then(|c| facecv::cmds::tls_fingerprint(&c, create))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("facecv: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `LOG_LEVEL` is FaceCV's variable (DEBUG, INFO, WARNING, ERROR); `RUST_LOG` wins when set.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => {
            let level = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "INFO".into());
            let level = match level.to_ascii_uppercase().as_str() {
                "WARNING" | "WARN" => "warn",
                "CRITICAL" | "ERROR" => "error",
                "DEBUG" => "debug",
                "TRACE" => "trace",
                _ => "info",
            };
            EnvFilter::new(format!("{level},hyper=warn,rustls=warn"))
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("config {}", p.display())),
        None => Ok(Config::embedded_default()),
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("facecv")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let app = App::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("shutting down");
        app.shutdown().await
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    Ok(())
}

fn check_config(path: &PathBuf) -> anyhow::Result<()> {
    let config = load(Some(path))?;
    let models = usable_models(&config.vision)?;
    println!("config {}: valid", path.display());
    for line in models {
        println!("  {line}");
    }
    println!(
        "  api.listen = {} ({})",
        config.api.listen,
        facecv::cmds::api_token_in_force(&config)?
    );
    println!(
        "  storage.dir = {} (quota {} MiB, fsync {:?})",
        config.storage.dir.display(),
        config.storage.quota_mb,
        config.storage.fsync
    );
    println!("  webhooks: {}", config.webhooks.len());
    match &config.mqtt {
        Some(m) => println!(
            "  mqtt: {}:{} as {} ({})",
            m.host,
            m.port(),
            m.client_id(),
            if m.enabled { "enabled" } else { "disabled" }
        ),
        None => println!("  mqtt: none"),
    }
    println!("  gpio actions: {}", config.actions.len());
    let db = config.storage.dir.join(facecv::store::DB_FILE);
    if db.exists() {
        let store = facecv::store::Store::open(&config.storage, Default::default())
            .with_context(|| format!("opening {}", db.display()))?;
        // SQLite may answer a badly damaged file with an error rather than a list of problems.
        let check = store.integrity_check().unwrap_or_else(|e| e.to_string());
        anyhow::ensure!(
            check == "ok",
            "store {} failed its integrity check: {check}\n\
             the file was left as it is; to copy what is readable into a new store, stop the \
             service and run: facecv salvage --from {} --to <new folder>/{}",
            db.display(),
            db.display(),
            facecv::store::DB_FILE
        );
        println!(
            "  store {}: ok, {} events",
            db.display(),
            store.event_count()?
        );
    }
    Ok(())
}

/// The model files the config names, checked as an engine would before compiling them (the
/// runtime library is not needed): a damaged or wrong model fails `check-config`, so that
/// `deploy.sh` rolls back rather than starting cameras that cannot run.
fn usable_models(vision: &facecv::vision::VisionConfig) -> anyhow::Result<Vec<String>> {
    let checks = facecv::vision::check_models(vision);
    let bad: Vec<String> = checks
        .iter()
        .filter_map(|m| {
            // Most model errors name their key already; say it once.
            let e = m.error.as_ref()?;
            Some(if e.starts_with(m.key) {
                e.clone()
            } else {
                format!("{}: {e}", m.key)
            })
        })
        .collect();
    anyhow::ensure!(
        bad.is_empty(),
        "{} model(s) cannot be used:\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
    Ok(checks
        .iter()
        .map(|m| format!("{} = {}: ok", m.key, m.path.display()))
        .collect())
}

//! `secutix-sync demo`: the whole pipeline on one machine, with no SecuTix account and no configuration file.
//!
//! What it owns: setting up a demo venue and handing it to the real daemon. [`Demo::prepare`] starts
//! - the built-in SecuTix simulator ([`crate::fakes::simulator`]) on loopback, REST or SOAP, with a generated
//!   catalogue, `in_progress` once, availabilities moving every few seconds, and a secret it checks;
//! - a demo folder (temporary, or `--dir`) holding the store, the secret and `demo.toml`, a configuration
//!   file written for this run and loaded through the normal loader ([`Config::load`], so validation runs);
//!   the operator CLI finds the demo daemon through it (`--config` or `SECUTIX_SYNC_CONFIG`);
//! - the `files` target writing into `./demo-output/` (one JSON file per product and `index.json`), and
//!   `index.html` there: a page that shows the indicators by reading `/public/availability`;
//! - the control API's listener (default `127.0.0.1:8087`, a free port when that one is taken), and a small
//!   web server next to it (the control port + 1, else a free port) that serves `demo-output/` and stands
//!   in for the SecuTix ticket shop the "Book" links lead to.
//!
//! Then [`Demo::run`] runs [`daemon::run`], the code of `secutix-sync run`, until the shutdown signal, and
//! [`Demo::once`] runs [`daemon::run_once`] (import, availability poll, push) for `demo --once`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, Sources};
use crate::daemon::{self, App, DaemonError};
use crate::fakes::simulator::{Simulator, SimulatorOptions};
use crate::store::{Store, StoreError};

/// The control API's address when `--listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8087";

/// The folder, in the working directory, that the demo's `files` target writes into.
pub const OUTPUT_DIR: &str = "demo-output";

/// The configuration file the demo writes into its folder.
pub const CONFIG_FILE: &str = "demo.toml";

/// Products of the demo venue when `--products` is not given.
pub const DEFAULT_PRODUCTS: usize = 24;

/// The page written into the output folder; `__ENDPOINT__` becomes the public availability URL.
const PAGE: &str = include_str!("demo_page.html");

/// `store.cache_mib` of the demo (a small venue).
const STORE_CACHE_MIB: u64 = 16;

/// How often the simulator's availabilities move.
const CHANGE_EVERY: Duration = Duration::from_secs(5);

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// One cycle (import, availability poll, push), then return.
    pub once: bool,
    /// The simulator and the client speak SOAP instead of REST.
    pub soap: bool,
    /// Demo folder (store, secret, `demo.toml`), kept; `None` = a temporary folder removed at the end.
    pub dir: Option<PathBuf>,
    /// Products in the simulated catalogue.
    pub products: usize,
    /// Control API address; `None` = [`DEFAULT_LISTEN`], or a free port when that one is taken.
    pub listen: Option<String>,
    /// Output folder of the `files` target (`./demo-output`).
    pub output: PathBuf,
}

/// Why the demo could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A local file or folder.
    #[error("{what} {path}: {reason}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The simulator could not start.
    #[error("cannot start the SecuTix simulator on loopback: {0}")]
    Simulator(std::io::Error),
    /// An address to listen on.
    #[error("cannot listen on {addr} ({what}): {reason}; pick another address with --listen (port 0 = any free one)")]
    Listen {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The generated configuration was refused (a bug: the demo writes it).
    #[error("the demo configuration {path} was refused: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ConfigError,
    },
    /// Another demo (or daemon) holds the store of this folder.
    #[error(
        "another secutix-sync demo runs on {0} (its store is locked); stop it first, or give this one another --dir"
    )]
    Busy(PathBuf),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The daemon.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// The demo folder: kept (`--dir`) or removed when the demo ends.
#[derive(Debug)]
enum Folder {
    Kept(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Folder {
    fn path(&self) -> &Path {
        match self {
            Folder::Kept(p) => p,
            Folder::Temporary(t) => t.path(),
        }
    }
}

/// A listener and whether it is the one asked for.
struct Bound {
    listener: TcpListener,
    addr: SocketAddr,
    /// Why another address than the usual one was taken, for the printout.
    note: Option<String>,
}

/// The long-running demo's servers, absent with `--once`.
struct Servers {
    control: Bound,
    website: Bound,
}

/// A prepared demo: everything started but the daemon.
pub struct Demo {
    app: Arc<App>,
    simulator: Simulator,
    servers: Option<Servers>,
    folder: Folder,
    config_file: PathBuf,
    output: PathBuf,
    products: usize,
    soap: bool,
    /// Product id used in the suggested commands.
    sample_product: i64,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("folder", &self.folder)
            .field("config_file", &self.config_file)
            .finish_non_exhaustive()
    }
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DemoError {
    let path = path.to_owned();
    move |e| DemoError::Io {
        what,
        path,
        reason: e.to_string(),
    }
}

/// Binds `addr`; when `fallback` and the address is taken, binds a free port on the same IP instead.
async fn bind(what: &'static str, addr: SocketAddr, fallback: bool) -> Result<Bound, DemoError> {
    let failed = |e: std::io::Error| DemoError::Listen {
        what,
        addr: addr.to_string(),
        reason: e.to_string(),
    };
    let (listener, note) = match TcpListener::bind(addr).await {
        Ok(l) => (l, None),
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(addr.ip(), 0);
            let l = TcpListener::bind(any).await.map_err(failed)?;
            (l, Some(format!("{addr} is taken: a free port instead")))
        }
        Err(e) => return Err(failed(e)),
    };
    let addr = listener.local_addr().map_err(failed)?;
    Ok(Bound { listener, addr, note })
}

/// `http://host:port` of a bound address; a wildcard address (`0.0.0.0`, `::`) is reached on loopback.
fn url_of(addr: SocketAddr) -> String {
    let host = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!("http://{host}:{}", addr.port())
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The values of one run that go into `demo.toml`.
struct Settings<'a> {
    config_file: &'a Path,
    secutix_url: String,
    soap: bool,
    secret_file: &'a Path,
    store: &'a Path,
    output: &'a Path,
    listen: String,
    website: String,
}

/// The demo configuration file: what differs from `config/default.toml`, each with its reason.
fn render_config(s: &Settings<'_>) -> String {
    let file = s.config_file.display().to_string();
    format!(
        r#"# secutix-sync demo configuration, written by `secutix-sync demo` at each start (its ports change).
# The CLI finds the running demo through this file, in another terminal:
#   secutix-sync --config {file} status
#   (or: export SECUTIX_SYNC_CONFIG={file})
# Keys not set here have the values of config/default.toml. A real installation sets the keys of the
# README's "Configuration" section instead: your institution, your secret, your CMS.

[secutix]
# The built-in SecuTix simulator on loopback, standing in for https://<institution>.ws.secutix.com.
institution = "SIMU"
base_url = {secutix_url}
transport = {transport}
operator = "SIMU_WEBSYNC"
partner = "secutix-sync demo"
# Generated for this run; the simulator checks every call with it (a JWT over REST, a UsernameToken over SOAP).
secret_file = {secret_file}

[catalogue]
# The simulator answers in_progress once, as SecuTix does while it builds a large catalogue.
in_progress_backoff = "2s"
in_progress_max_backoff = "10s"
deadline = "2m"
# SecuTix allows one catalogue call per 10 minutes (keep the default "10m" there); the simulator has no such
# rule, so `resync` imports again at once.
min_interval = "0s"

[store]
path = {store}
cache_mib = {cache_mib}

[entries]
# The demo's web server stands in for the SecuTix ticket shop: the "Book" links lead there.
shop_url = {website}

[availability]
# The simulator counts no monthly quota. With SecuTix's 10000 calls a month the planner spaces polls out and
# asks about far-off products less often; here every product is asked about at every poll, once a minute
# (SecuTix's floor: availability.min_interval is never under 1 minute).
monthly_call_budget = 1000000
min_interval = "1m"
max_interval = "1m"
mid_every = 1
far_every = 1

[daemon]
shutdown_grace = "5s"

[control]
listen = {listen}
# The demo page comes from the demo's web server, another origin than the control API: allowed to read /public/.
cors_origins = [{website}]
public_max_age = "10s"

[[targets]]
name = "demo-output"
kind = "files"
backoff_initial = "1s"
backoff_max = "10s"
[targets.files]
path = {output}
pretty = true
"#,
        secutix_url = quoted(&s.secutix_url),
        transport = quoted(if s.soap { "soap" } else { "rest" }),
        secret_file = quoted(&s.secret_file.display().to_string()),
        store = quoted(&s.store.display().to_string()),
        website = quoted(&s.website),
        listen = quoted(&s.listen),
        output = quoted(&s.output.display().to_string()),
        cache_mib = STORE_CACHE_MIB,
    )
}

/// Writes `bytes` readable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(bytes)
}

/// True for the files the `files` target writes (`secutix-….json`, `index.json`).
fn is_entry_file(name: &str) -> bool {
    name == "index.json"
        || (name.starts_with("secutix-")
            && name.ends_with(".json")
            && name[..name.len() - 5]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

/// Removes the entry files of an earlier demo from `dir` (a fresh store starts from an empty output).
fn clear_output(dir: &Path) -> Result<usize, DemoError> {
    let mut removed = 0;
    for item in std::fs::read_dir(dir).map_err(io_error("cannot read the output folder", dir))? {
        let item = item.map_err(io_error("cannot read the output folder", dir))?;
        if is_entry_file(&item.file_name().to_string_lossy()) {
            std::fs::remove_file(item.path()).map_err(io_error("cannot remove", &item.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl Demo {
    /// Starts the simulator, writes and loads the demo configuration, opens the store, binds the servers
    /// (not with `once`) and builds the daemon.
    pub async fn prepare(opts: DemoOptions) -> Result<Demo, DemoError> {
        let folder = match &opts.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(io_error("cannot create the demo folder", dir))?;
                Folder::Kept(std::path::absolute(dir).map_err(io_error("cannot resolve", dir))?)
            }
            None => Folder::Temporary(
                tempfile::Builder::new()
                    .prefix("secutix-sync-demo-")
                    .tempdir()
                    .map_err(io_error("cannot create a temporary folder in", &std::env::temp_dir()))?,
            ),
        };
        let root = folder.path().to_owned();
        // The store first: its lock refuses a second demo on the same folder before anything there is
        // rewritten (the running demo's configuration and secret).
        let store_path = root.join("store");
        std::fs::create_dir_all(&store_path).map_err(io_error("cannot create the store folder", &store_path))?;
        let store = Store::open(&store_path, STORE_CACHE_MIB, crate::clock::system()).map_err(|e| match e {
            StoreError::Locked { .. } => DemoError::Busy(root.clone()),
            other => DemoError::Store(other),
        })?;
        let output = std::path::absolute(&opts.output).map_err(io_error("cannot resolve", &opts.output))?;
        std::fs::create_dir_all(&output).map_err(io_error("cannot create the output folder", &output))?;

        let secret = hex::encode(rand::random::<[u8; 24]>());
        let secret_file = root.join("secutix-secret");
        write_private(&secret_file, format!("{secret}\n").as_bytes())
            .map_err(io_error("cannot write the simulator's secret", &secret_file))?;
        let simulator = Simulator::start(SimulatorOptions {
            products: opts.products,
            availability_change_every: CHANGE_EVERY,
            in_progress_once: true,
            secret: Some(SecretString::from(secret)),
            ..SimulatorOptions::default()
        })
        .await
        .map_err(DemoError::Simulator)?;
        let sample_product = simulator.generator().plan(0).id;

        let servers = if opts.once {
            None
        } else {
            let (addr, fallback) = match &opts.listen {
                Some(a) => (
                    a.parse::<SocketAddr>().map_err(|e| DemoError::Listen {
                        what: "--listen",
                        addr: a.clone(),
                        reason: format!("not an address such as 127.0.0.1:8087 ({e})"),
                    })?,
                    false,
                ),
                None => (
                    DEFAULT_LISTEN
                        .parse()
                        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8087))),
                    true,
                ),
            };
            let control = bind("the control API", addr, fallback).await?;
            // The page's server sits next to the control API, on loopback.
            let port = if addr.port() == 0 {
                0
            } else {
                control.addr.port().checked_add(1).unwrap_or(0)
            };
            let website = bind("the demo web server", SocketAddr::from(([127, 0, 0, 1], port)), true).await?;
            Some(Servers { control, website })
        };
        // Without servers (`--once`) the links name the address the web server would usually have.
        let website = match &servers {
            Some(s) => url_of(s.website.addr),
            None => "http://127.0.0.1:8088".to_owned(),
        };
        let listen = match &servers {
            Some(s) => s.control.addr.to_string(),
            None => DEFAULT_LISTEN.to_owned(),
        };

        let config_file = root.join(CONFIG_FILE);
        let toml = render_config(&Settings {
            config_file: &config_file,
            secutix_url: simulator.base_url(),
            soap: opts.soap,
            secret_file: &secret_file,
            store: &store_path,
            output: &output,
            listen,
            website,
        });
        std::fs::write(&config_file, toml).map_err(io_error("cannot write the demo configuration", &config_file))?;
        // The normal loader, so the demo configuration is validated like any other; the environment is left
        // out so that an installation's SECUTIX_SYNC__… variables cannot point the demo elsewhere.
        let sources = Sources {
            file: Some(config_file.clone()),
            env: Some(Default::default()),
            overrides: None,
        };
        let config = Config::load(&sources)
            .map_err(|source| DemoError::Config {
                path: config_file.clone(),
                source,
            })?
            .config;

        if store.generation()?.is_none() {
            let removed = clear_output(&output)?;
            if removed > 0 {
                tracing::info!(removed, folder = %output.display(), "a new demo store: removed the entry files of an earlier demo");
            }
        }
        if let Some(s) = &servers {
            let page = PAGE.replace(
                "__ENDPOINT__",
                &format!("{}/public/availability", url_of(s.control.addr)),
            );
            let path = output.join("index.html");
            std::fs::write(&path, page).map_err(io_error("cannot write the demo page", &path))?;
        }
        let app = App::build(config, sources, store)?;
        Ok(Demo {
            app,
            simulator,
            servers,
            folder,
            config_file,
            output,
            products: opts.products,
            soap: opts.soap,
            sample_product,
        })
    }

    /// The demo configuration file (`--config` of the CLI).
    pub fn config_file(&self) -> &Path {
        &self.config_file
    }

    /// The output folder of the `files` target.
    pub fn output(&self) -> &Path {
        &self.output
    }

    /// The control API's address (`None` with `--once`).
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.servers.as_ref().map(|s| s.control.addr)
    }

    /// The demo web server's address (`None` with `--once`).
    pub fn website_addr(&self) -> Option<SocketAddr> {
        self.servers.as_ref().map(|s| s.website.addr)
    }

    /// What to open and what to try, printed when the long-running demo starts. `cli` is how the reader
    /// runs the binary (`secutix-sync`, or its path when it is not on `PATH`).
    pub fn banner(&self, cli: &str) -> String {
        use std::fmt::Write;
        let cfg = self.app.config();
        let mut b = String::new();
        let transport = if self.soap { "SOAP" } else { "REST" };
        let _ = writeln!(
            b,
            "secutix-sync demo: a venue of {} products, synchronised from the built-in SecuTix simulator ({transport})",
            self.products
        );
        let _ = writeln!(
            b,
            "  SecuTix simulator  {} (answers in_progress once; seats sell every {} s)",
            self.simulator.base_url(),
            CHANGE_EVERY.as_secs()
        );
        let kept = match &self.folder {
            Folder::Kept(_) => "kept",
            Folder::Temporary(_) => "temporary: removed when the demo stops",
        };
        let _ = writeln!(b, "  demo folder        {} ({kept})", self.folder.path().display());
        let _ = writeln!(b, "  configuration      {}", self.config_file.display());
        let _ = writeln!(b, "  store              {}", cfg.store.path.display());
        let _ = writeln!(
            b,
            "  files target       {}/ (one JSON file per product, index.json)",
            self.output.display()
        );
        let Some(s) = &self.servers else { return b };
        let control = url_of(s.control.addr);
        let website = url_of(s.website.addr);
        for (what, bound, url) in [
            ("control API", &s.control, &control),
            ("web server", &s.website, &website),
        ] {
            let note = bound.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default();
            let _ = writeln!(b, "  {what:<18} {url}{note}");
        }
        let token = cfg.store.path.join(daemon::TOKEN_FILE);
        let _ = writeln!(b);
        let _ = writeln!(b, "Open:");
        let _ = writeln!(
            b,
            "  {website}/    the venue's page (demo-output/index.html): green / orange / red indicators and Book links"
        );
        let _ = writeln!(
            b,
            "  {control}/public/availability    what the page reads (public, no token)"
        );
        let _ = writeln!(
            b,
            "  curl -H \"Authorization: Bearer $(cat {})\" {control}/status",
            token.display()
        );
        let _ = writeln!(
            b,
            "  {}/    the entry files; {control}/metrics with the same token",
            self.output.display()
        );
        let _ = writeln!(b);
        let _ = writeln!(
            b,
            "Try, in another terminal (the CLI finds this demo through its configuration):"
        );
        let _ = writeln!(b, "  export SECUTIX_SYNC_CONFIG={}", self.config_file.display());
        if cli != "secutix-sync" {
            let _ = writeln!(b, "  alias secutix-sync='{cli}'");
        }
        for command in [
            "secutix-sync status".to_owned(),
            "secutix-sync resync --wait".to_owned(),
            "secutix-sync entries list".to_owned(),
            format!("secutix-sync entries show {}", self.sample_product),
            format!("secutix-sync resync --product {} --wait", self.sample_product),
            "secutix-sync dlq list".to_owned(),
        ] {
            let _ = writeln!(b, "  {command}");
        }
        let _ = writeln!(b, "  (or: secutix-sync --config {} status)", self.config_file.display());
        let _ = writeln!(b);
        let _ = writeln!(
            b,
            "Indicators refresh every minute: the daemon polls availabilities at most once a minute, SecuTix's floor."
        );
        let _ = writeln!(b, "Ctrl-C (or SIGTERM) stops the demo.");
        b
    }

    /// Runs the daemon (the code of `secutix-sync run`) and the demo web server until `shutdown`; then stops
    /// the simulator and removes a temporary demo folder.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        reload: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
    ) -> Result<(), DemoError> {
        let Demo {
            app,
            simulator,
            servers,
            folder,
            output,
            ..
        } = self;
        let Some(Servers { control, website }) = servers else {
            return Err(DemoError::Listen {
                what: "the control API",
                addr: DEFAULT_LISTEN.to_owned(),
                reason: "the demo was prepared with --once".into(),
            });
        };
        let stop = CancellationToken::new();
        let web = tokio::spawn(serve_website(website.listener, output, stop.clone()));
        let result = daemon::run(
            app.clone(),
            control.listener,
            crate::control::router(app),
            shutdown,
            reload,
        )
        .await;
        stop.cancel();
        let _ = web.await;
        simulator.stop().await;
        drop(folder);
        Ok(result?)
    }

    /// One cycle: import, availability poll, push to the output folder. `Ok` when every step succeeded,
    /// with the summary either way (as `run --once`).
    pub async fn once(self) -> Result<daemon::summaries::OnceReport, daemon::summaries::OnceReport> {
        let result = daemon::run_once(self.app.clone(), Duration::from_secs(30)).await;
        self.simulator.stop().await;
        result
    }
}

/// The demo web server: `demo-output/` (the page, `index.json` and the entry files) and a stand-in for the
/// SecuTix ticket shop at the paths of its redirect links.
async fn serve_website(listener: TcpListener, output: PathBuf, stop: CancellationToken) {
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/{file}", get(entry_file))
        .route("/api/1/redirect/product", get(shop))
        .route("/api/1/redirect/product/performance", get(shop_performance))
        .with_state(Arc::new(output));
    // The same limits as the control API's defaults: a page left open cannot hold connections forever.
    crate::net::serve(
        "the demo web server",
        listener,
        app,
        crate::net::ListenerLimits::default(),
        stop,
    )
    .await;
}

async fn page(State(dir): State<Arc<PathBuf>>) -> Response {
    match tokio::fs::read(dir.join("index.html")).await {
        Ok(b) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], b).into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            format!("no index.html in {}: {e}\n", dir.display()),
        )
            .into_response(),
    }
}

async fn entry_file(State(dir): State<Arc<PathBuf>>, UrlPath(file): UrlPath<String>) -> Response {
    if !is_entry_file(&file) {
        return (StatusCode::NOT_FOUND, "not a file of the demo output\n").into_response();
    }
    match tokio::fs::read(dir.join(&file)).await {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(_) => (
            StatusCode::NOT_FOUND,
            format!("{file} is not in {} (yet)\n", dir.display()),
        )
            .into_response(),
    }
}

/// The shop stand-in's page for a redirect link: what the real shop would open.
fn shop_page(what: &str, q: &HashMap<String, String>) -> Response {
    let id = q.get("id").and_then(|i| i.parse::<i64>().ok());
    let lang = q
        .get("lang")
        .filter(|l| l.len() == 2 && l.chars().all(|c| c.is_ascii_alphabetic()))
        .map_or("fr", String::as_str);
    let Some(id) = id else {
        return (StatusCode::BAD_REQUEST, "the link has no numeric id=\n").into_response();
    };
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Ticket shop (demo)</title>\
         <body style=\"font:16px system-ui,sans-serif;margin:3em\"><h1>Ticket shop (stand-in)</h1>\
         <p>Here SecuTix's ticket shop would open the booking of {what} <strong>{id}</strong> in language \
         <strong>{lang}</strong>: the link is the shop's <code>/api/1/redirect/…?id=…&amp;lang=…</code> \
         (<code>entries.book_url</code>, <code>entries.performance_url</code>), shown only while on sale and not full.</p>\
         <p><a href=\"/\">Back to the programme</a></p></body>"
    ))
    .into_response()
}

async fn shop(Query(q): Query<HashMap<String, String>>) -> Response {
    shop_page("product", &q)
}

async fn shop_performance(Query(q): Query<HashMap<String, String>>) -> Response {
    shop_page("performance", &q)
}

#[cfg(test)]
mod tests;

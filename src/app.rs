//! Wiring: the store, the outbox, the sinks (webhooks, MQTT, GPIO actions), the cameras and the
//! API, started in that order and stopped in reverse.
//!
//! The stop order is what makes SIGTERM safe. Each part is stopped, and waited for, before the
//! next, so nothing records into a part that is already gone ([`App::shutdown`] follows it):
//! 1. **The API** stops accepting connections; requests in flight get a few seconds to finish
//!    (new events are refused with 503 meanwhile), and live streams end, stopping the cameras
//!    they started.
//! 2. **The cameras** stop, all at once, and each records its last event, `stream_stopped` with the
//!    reason `shutdown`, while the outbox still takes it.
//! 3. **The sinks** (GPIO actions, the MQTT bridge, the webhooks) stop, abandoning deliveries in
//!    flight without moving their cursors: what they had not delivered is delivered after the next
//!    start. The MQTT bridge says `offline`.
//! 4. **The root** is cancelled, which stops what is left (the systemd watchdog).
//! 5. **The outbox** commits what is queued, and last **the store** checkpoints its WAL, so the
//!    next start has nothing to replay.
//!
//! The signal is a [`Shutdown`] tree: one root for the appliance, a child for the API and one for
//! the cameras (each camera a child of that). The sinks keep their own stop signals, stopped by
//! their `shutdown`, so that a cancelled root never stops them before the cameras' last events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::actions::pins::Pins;
use crate::api;
use crate::camera::control::CameraControl;
use crate::camera::ApiSources;
use crate::config::Config;
use crate::delivery::mqtt::Bridge;
use crate::delivery::{Sink, SinkContext, Webhooks};
use crate::metrics::Metrics;
use crate::pipeline::{CameraOrigin, Cameras, SharedGallery};
use crate::shutdown::Shutdown;
use crate::store::sinks::Origin;
use crate::store::{Outbox, Store};

/// What the appliance switches besides its store: cameras and GPIO pins. `None` means the
/// defaults: the camera manager, and this machine's GPIO.
#[derive(Default)]
pub struct Devices {
    pub cameras: Option<Arc<dyn CameraControl>>,
    pub pins: Option<Arc<dyn Pins>>,
}

pub struct App {
    /// The plain HTTP listener's address, or the HTTPS one's when plain HTTP is off.
    addr: SocketAddr,
    https: Option<api::HttpsInfo>,
    store: Store,
    outbox: Outbox,
    cameras: Arc<Cameras>,
    /// What MQTT commands and GPIO inputs switch: the camera manager, or a test double.
    control: Arc<dyn CameraControl>,
    mqtt: Option<Arc<Bridge>>,
    /// Every running sink, in the order they started; they stop in reverse.
    sinks: Vec<Arc<dyn Sink>>,
    /// The appliance's root; see the module comment for its children.
    root: Shutdown,
    /// The API's child of `root`, cancelled first.
    api_stop: Shutdown,
    api: JoinHandle<()>,
}

impl App {
    /// Opens the store, applies the config's webhooks, starts the sinks and binds the API.
    pub async fn start(config: Config) -> anyhow::Result<App> {
        Self::start_with(config, Devices::default()).await
    }

    /// [`App::start`] with the given cameras and pins (the camera manager, or test doubles).
    pub async fn start_with(config: Config, devices: Devices) -> anyhow::Result<App> {
        let metrics = Arc::new(Metrics::new());
        let store = Store::open(&config.storage, metrics.clone())
            .with_context(|| format!("opening the store in {}", config.storage.dir.display()))?;
        store.check_integrity_in_background();
        // Before anything runs: a certificate that cannot be served stops the start here.
        let tls = match config.api.tls_listen {
            Some(_) => Some(
                api::tls::Identity::load(&config.api, &config.storage.dir)
                    .context("api.tls_listen: cannot load the HTTPS certificate")?,
            ),
            None => None,
        };
        // The state folder's token wins over the config's; a damaged file stops the start here.
        let token = Arc::new(
            api::ApiToken::load(config.api.token.as_deref(), &config.storage.dir)
                .context("api.token")?,
        );
        log_token_source(&token);
        apply_config_webhooks(&store, &config)?;
        let outbox = Outbox::start(store.clone()).context("starting the outbox")?;
        let webhooks = Webhooks::start(outbox.clone(), &config.delivery, metrics.clone())
            .context("starting the webhooks")?;
        let gallery = SharedGallery::load(
            &store,
            &embedder_id(&config.vision),
            config.vision.match_threshold(),
        )
        .context("loading the enrolled faces")?;
        let vision = Arc::new(crate::vision::VisionHealth::new(config.vision.clone()));
        let root = Shutdown::new();
        let cameras = Arc::new(
            Cameras::new(
                config.vision.clone(),
                vision.clone(),
                gallery,
                outbox.clone(),
                config.storage.dir.join("snapshots"),
                root.child_token(),
            )
            .with_api_sources(ApiSources::new(config.api.media_dir.clone()))
            .with_snapshot_links(
                crate::pipeline::snapshot::SnapshotLinks::open(
                    &config.storage.dir,
                    config.api.public_url.as_deref(),
                    config.api.snapshot_url_ttl_s,
                )
                .context("api.public_url: the key that signs snapshot links")?,
            ),
        );
        cameras.attach();
        for c in &config.cameras {
            cameras.add(c.clone(), CameraOrigin::Config)?;
        }
        let restored = cameras
            .restore()
            .context("loading the cameras added over the API")?;
        if restored > 0 {
            tracing::info!(cameras = restored, "cameras added over the API are back");
        }
        let control: Arc<dyn CameraControl> = match devices.cameras {
            Some(c) => c,
            None => cameras.clone(),
        };
        let ctx = SinkContext {
            outbox: outbox.clone(),
            metrics: metrics.clone(),
            cameras: control.clone(),
        };
        let mqtt = crate::delivery::mqtt::start(config.mqtt.as_ref(), &ctx)
            .context("starting the MQTT bridge")?;
        // The sinks, one line each; they stop in reverse order.
        let mut sinks: Vec<Arc<dyn Sink>> = vec![webhooks.clone()];
        sinks.extend(mqtt.clone().map(|m| m as Arc<dyn Sink>));
        let gpio = Arc::new(crate::actions::GpioStatus::default());
        sinks.extend(crate::actions::start(
            &config.actions,
            devices.pins,
            &ctx,
            &gpio,
        )?);
        let (listeners, http_addr, https) = bind_api(&config, tls).await?;
        let api_stop = root.child_token();
        let state = Arc::new(api::State {
            store: store.clone(),
            outbox: outbox.clone(),
            webhooks,
            cameras: cameras.clone(),
            engine: Arc::new(std::sync::Mutex::new(api::ApiEngine::new(
                config.vision.clone(),
                vision.clone(),
            ))),
            vision,
            mqtt: mqtt.clone(),
            gpio,
            metrics,
            config: config.api.clone(),
            started: Instant::now(),
            stopping: api_stop.clone(),
            streams: api::limits::StreamSlots::new(config.api.max_streams as usize),
            stream_webhooks: api::limits::StreamSlots::new(api::stream_webhook_limit(
                config.api.max_streams,
            )),
            stream_cameras: Default::default(),
            https: https.clone(),
            token: token.clone(),
            sessions: api::Sessions::new(std::time::Duration::from_secs(
                u64::from(config.api.session_ttl_minutes) * 60,
            )),
            system: api::SystemInfo::new(
                config.file.clone(),
                config.redacted_json(),
                device_id(&config),
            ),
        });
        let lan = http_addr
            .into_iter()
            .chain(https.as_ref().map(|h| h.addr))
            .find(|a| !a.ip().is_loopback());
        if let (false, Some(addr)) = (token.is_set(), lan) {
            tracing::warn!(%addr, "no api.token: the API will answer only clients on this machine");
        }
        let api = tokio::spawn(api::serve(listeners, state, api_stop.clone()));
        let starting = cameras.clone();
        tokio::task::spawn_blocking(move || starting.start_autostart());
        crate::systemd::spawn_watchdog(store.clone(), root.clone());
        crate::systemd::ready();
        let addr = match (http_addr, &https) {
            (Some(a), _) => a,
            (None, Some(h)) => h.addr,
            (None, None) => unreachable!("the config check allows no API without a listener"),
        };
        tracing::info!(%addr, store = %store.path().display(), "FaceCV Edge is running");
        Ok(App {
            addr,
            https,
            store,
            outbox,
            mqtt,
            sinks,
            control,
            cameras,
            root,
            api_stop,
            api,
        })
    }

    /// Where the API listens (useful when the config asked for port 0): the plain HTTP
    /// listener, or the HTTPS one when `api.http = false`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTPS listener's address and certificate, with `api.tls_listen`.
    pub fn https(&self) -> Option<&api::HttpsInfo> {
        self.https.as_ref()
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The MQTT bridge, when `[mqtt]` is configured and enabled.
    pub fn mqtt(&self) -> Option<&Arc<Bridge>> {
        self.mqtt.as_ref()
    }

    /// What MQTT commands and GPIO inputs switch.
    pub fn control(&self) -> &Arc<dyn CameraControl> {
        &self.control
    }

    pub fn cameras(&self) -> &Arc<Cameras> {
        &self.cameras
    }

    /// Stops everything in the order of the module comment, each part before the next.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        crate::systemd::stopping();
        // 1. The API (serve returns once requests in flight are done or out of time).
        self.api_stop.cancel();
        let _ = self.api.await;
        // 2. The cameras, joined off the async threads; each records `stream_stopped`.
        let cameras = self.cameras.clone();
        let _ = tokio::task::spawn_blocking(move || cameras.shutdown()).await;
        // 3. The sinks, in reverse order of their start.
        for sink in self.sinks.iter().rev() {
            tracing::debug!(sink = sink.name(), "stopping");
            sink.shutdown().await;
        }
        // 4. What is left under the root; 5. the outbox, then the store.
        self.root.cancel();
        self.outbox.stop().await;
        self.store.close().context("closing the store")?;
        tracing::info!("FaceCV Edge stopped cleanly");
        Ok(())
    }
}

/// Binds the API's listeners, plain and HTTPS (serving `tls`) as configured. The HTTPS line names
/// the URL and the fingerprint, for people checking what their browser shows.
async fn bind_api(
    config: &Config,
    tls: Option<api::tls::Identity>,
) -> anyhow::Result<(api::Listeners, Option<SocketAddr>, Option<api::HttpsInfo>)> {
    let api = &config.api;
    let http = if api.http {
        let l = tokio::net::TcpListener::bind(api.listen)
            .await
            .with_context(|| format!("api.listen: cannot listen on {}", api.listen))?;
        Some(l)
    } else {
        None
    };
    let http_addr = http.as_ref().map(|l| l.local_addr()).transpose()?;
    let (Some(tls_listen), Some(identity)) = (api.tls_listen, tls) else {
        return Ok((api::Listeners { http, https: None }, http_addr, None));
    };
    let l = tokio::net::TcpListener::bind(tls_listen)
        .await
        .with_context(|| format!("api.tls_listen: cannot listen on {tls_listen}"))?;
    let addr = l.local_addr()?;
    let url = if addr.ip().is_unspecified() {
        format!("https://{}:{}/", api::tls::url_host(), addr.port())
    } else {
        format!("https://{addr}/")
    };
    tracing::info!(
        url = %url,
        fingerprint = %identity.fingerprint,
        certificate = %identity.cert.display(),
        "HTTPS API listening; check that the browser shows this SHA-256 fingerprint"
    );
    let info = api::HttpsInfo {
        addr,
        fingerprint: identity.fingerprint,
        source: identity.source,
    };
    let listeners = api::Listeners {
        http,
        https: Some((l, identity.acceptor)),
    };
    Ok((listeners, http_addr, Some(info)))
}

/// Says which token is in force, so that an operator who edits `api.token` while a rotated one
/// sits in the state folder learns why the edit changes nothing.
fn log_token_source(token: &api::ApiToken) {
    use api::token::TokenSource;
    match token.source() {
        TokenSource::State => tracing::info!(
            file = %token.file().display(),
            "API token: the one rotated from the console, in the state folder (it wins over \
             api.token; delete the file to use the config file's)"
        ),
        TokenSource::Config => tracing::info!("API token: api.token of the config file"),
        TokenSource::None => tracing::info!("API token: none; the API answers this machine only"),
    }
}

/// The appliance's one id: MQTT's (`mqtt.device_id`, the host name by default), also without MQTT.
fn device_id(config: &Config) -> String {
    match &config.mqtt {
        Some(m) => m.device_id.clone(),
        None => crate::delivery::mqtt::default_device_id(),
    }
}

/// Webhooks in the config file are created or updated; ones that were in an earlier config file
/// and are gone from this one are deleted. Webhooks made over the API are left alone.
fn apply_config_webhooks(store: &Store, config: &Config) -> anyhow::Result<()> {
    for w in &config.webhooks {
        store
            .apply_config_webhook(w)
            .with_context(|| format!("applying webhook {} from the config", w.webhook_id))?;
    }
    for old in store.webhooks()? {
        let still = config
            .webhooks
            .iter()
            .any(|w| w.webhook_id == old.config.webhook_id);
        if old.origin == Origin::Config && !still {
            tracing::info!(webhook = %old.config.webhook_id, "webhook removed from the config; deleting it");
            store.delete_webhook(&old.id())?;
        }
    }
    Ok(())
}

/// What enrolled embeddings are tagged with: embeddings of different networks (or files) live in
/// different spaces and must never be compared.
pub fn embedder_id(vision: &crate::vision::VisionConfig) -> String {
    let kind = vision.embedder.kind.as_str();
    let file = vision
        .embedder_model()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{kind}:{file}")
}

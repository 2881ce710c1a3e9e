//! A real Mosquitto broker per test, on a free loopback port, and a subscriber that records what it
//! gets. The subscriber speaks MQTT 3.1.1 (the appliance speaks 5), as many listeners still do.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use super::{eventually, start_app_with, Api, Running};

/// Long enough for anything on loopback, short enough to fail a stuck test.
pub const LONG: Duration = Duration::from_secs(30);

/// Mosquitto from Debian: on PATH for root, in /usr/sbin for everyone.
fn mosquitto() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("mosquitto");
        if p.is_file() {
            return p;
        }
    }
    let sbin = PathBuf::from("/usr/sbin/mosquitto");
    assert!(
        sbin.is_file(),
        "mosquitto is not installed (scripts/test.sh installs it: apt-get install mosquitto)"
    );
    sbin
}

/// One Mosquitto child process. Killed when dropped.
pub struct Broker {
    pub port: u16,
    pub dir: tempfile::TempDir,
    extra: String,
    child: Option<Child>,
}

impl Broker {
    /// A broker with anonymous access and no persistence.
    pub fn start() -> Broker {
        Self::start_with("persistence false\n")
    }

    /// A broker with extra lines in its config (`{dir}` stands for its own folder).
    pub fn start_with(extra: &str) -> Broker {
        Self::start_prepared(extra, |_| {})
    }

    /// [`Broker::start_with`], after `prepare` wrote the files the config names into the folder.
    pub fn start_prepared(extra: &str, prepare: impl FnOnce(&Path)) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let mut b = Broker {
            port: super::free_port(),
            dir,
            extra,
            child: None,
        };
        b.spawn();
        b
    }

    /// Keeps its queued messages and sessions across [`Broker::stop`] and [`Broker::restart`], so
    /// that a persistent subscriber misses nothing while the appliance reconnects.
    pub fn start_persistent() -> Broker {
        Self::start_with("persistence true\npersistence_location {dir}/\nautosave_interval 1\n")
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        // `user root` keeps a broker started by root from switching to the mosquitto user, which
        // could not read this folder; for anyone else it does nothing.
        write!(
            f,
            "listener {} 127.0.0.1\nallow_anonymous true\nuser root\nlog_type all\n{}",
            self.port, self.extra
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto is not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A clean stop (SIGTERM): Mosquitto saves its persistence file, if it has one, and closes
    /// every connection.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts again on the same port with the same config.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message a subscriber got.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub qos: QoS,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).expect("a JSON payload")
    }
}

/// A subscriber on the test broker, reconnecting (and subscribing again) by itself.
pub struct Subscriber {
    pub client: AsyncClient,
    got: Arc<Mutex<Vec<Message>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// A clean-session subscriber; returns once the broker confirmed every subscription.
    pub async fn connect(port: u16, filters: &[&str]) -> Subscriber {
        let id = format!("test-{}", uuid::Uuid::new_v4().simple());
        Self::connect_as(port, &id, true, filters).await
    }

    /// A subscriber whose session the broker keeps while it is away (with a persistent broker,
    /// even across a broker restart).
    pub async fn connect_persistent(port: u16, id: &str, filters: &[&str]) -> Subscriber {
        Self::connect_as(port, id, false, filters).await
    }

    async fn connect_as(port: u16, id: &str, clean: bool, filters: &[&str]) -> Subscriber {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_clean_session(clean)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let got = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let (log, c, wanted) = (got.clone(), client.clone(), filters.len());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for f in &filters {
                            let _ = c.subscribe(f.clone(), QoS::AtLeastOnce).await;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => log.lock().unwrap().push(Message {
                        topic: p.topic.clone(),
                        payload: String::from_utf8_lossy(&p.payload).into_owned(),
                        qos: p.qos,
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        for _ in 0..wanted {
            tokio::time::timeout(Duration::from_secs(10), ready.recv())
                .await
                .expect("the broker confirms the subscription");
        }
        Subscriber { client, got, task }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.got.lock().unwrap().clone()
    }

    /// Messages on exactly `topic`.
    pub fn on(&self, topic: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    /// Messages whose topic starts with `prefix`.
    pub fn under(&self, prefix: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic.starts_with(prefix))
            .collect()
    }

    /// The event ids received under `prefix`, in arrival order, repeats included.
    pub fn event_ids(&self, prefix: &str) -> Vec<String> {
        self.under(prefix)
            .iter()
            .map(|m| m.json()["id"].as_str().expect("an event id").to_owned())
            .collect()
    }

    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `ids` without repeats, each at its first arrival: what an at-least-once receiver that
/// deduplicates on `id` ends up with.
pub fn first_arrivals(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().filter(|id| seen.insert(*id)).cloned().collect()
}

/// An `[mqtt]` section for the test broker: device `door1`, quick reconnection.
pub fn mqtt_config(port: u16) -> facecv::delivery::mqtt::MqttConfig {
    let mut m = facecv::delivery::mqtt::MqttConfig::new("127.0.0.1");
    m.port = Some(port);
    m.device_id = "door1".into();
    m.reconnect_delay = 0.2;
    m.reconnect_max_delay = 1.0;
    m
}

/// `GET /api/v1/mqtt/stats`.
pub async fn mqtt_stats(api: &Api) -> Value {
    let (status, v) = api.get("/api/v1/mqtt/stats").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

pub async fn until_connected(api: &Api) {
    let api = api.clone();
    eventually(LONG, "the bridge connected", || {
        let api = api.clone();
        async move { mqtt_stats(&api).await["connected"] == true }
    })
    .await;
}

/// The appliance in-process with `[mqtt]` pointing at `broker`.
pub async fn app_on(broker: &Broker, tweak: impl FnOnce(&mut facecv::Config)) -> Running {
    let port = broker.port;
    let app = start_app_with(|c| {
        c.mqtt = Some(mqtt_config(port));
        tweak(c);
    })
    .await;
    until_connected(&app.api).await;
    app
}

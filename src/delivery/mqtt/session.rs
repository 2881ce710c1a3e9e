//! One MQTT session: connect, announce, publish from the outbox while acknowledgements come back,
//! answer commands, and end on a lost connection or a stop.
//!
//! rumqttc's event loop runs in a task of its own and hands every event over an unbounded channel.
//! The session therefore never holds up the event loop (which would stall pings and acknowledgements)
//! and never cancels its `poll` half-way through a write. The channel stays small because at most
//! `inflight` events are out at a time.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shutdown::Shutdown;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ClientError, ConnectionError, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{broadcast, mpsc};

use super::inflight::{Inflight, Purpose};
use super::{discovery, topics, Shared};
use crate::camera::control::CameraInfo;
use crate::events::StoredEvent;
use crate::store::now_ms;
use crate::store::subscription::Subscription;

/// Requests the client may queue for the event loop before `publish` waits.
const REQUEST_CAPACITY: usize = 64;
/// Seconds to wait for the TCP (and TLS) connection and the CONNACK.
const CONNECT_TIMEOUT_SECS: u64 = 5;
/// The largest packet we accept from the broker: commands and Home Assistant's status are tiny.
const MAX_INCOMING: u32 = 64 * 1024;
/// How long a clean stop waits for the broker to take `offline` and the DISCONNECT.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a store error before reading the outbox again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How a session ended.
pub(super) enum End {
    Stopped,
    Lost { error: String, connected: bool },
}

fn lost(error: impl std::fmt::Display) -> End {
    End::Lost {
        error: error.to_string(),
        connected: true,
    }
}

type Events = mpsc::UnboundedReceiver<Result<Event, ConnectionError>>;

struct Session<'a> {
    shared: &'a Shared,
    client: AsyncClient,
    events: Events,
    inflight: Inflight,
    qos: QoS,
    /// Ours or the broker's limit, whichever is smaller.
    max_packet: usize,
    stop: Shutdown,
}

/// Runs one session from the subscription's position until the connection is lost or `stop` is
/// cancelled.
pub(super) async fn run(
    shared: &Shared,
    subscription: &mut Subscription,
    changes: &mut Option<broadcast::Receiver<CameraInfo>>,
    stop: &Shutdown,
) -> End {
    let (client, eventloop) = AsyncClient::new(options(shared), REQUEST_CAPACITY);
    let (tx, events) = mpsc::unbounded_channel();
    let driver = tokio::spawn(drive(eventloop, tx));
    let mut session = Session {
        shared,
        client,
        events,
        inflight: Inflight::new(subscription.position()),
        qos: if shared.config.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        max_packet: shared.config.max_packet_bytes(),
        stop: stop.clone(),
    };
    let end = match session.connect().await {
        Ok(()) => match session.serve(subscription, changes).await {
            Ok(never) => match never {},
            Err(end) => end,
        },
        Err(end) => end,
    };
    // Dropping the event loop drops the connection; without a DISCONNECT the broker sends the will.
    driver.abort();
    end
}

fn options(shared: &Shared) -> MqttOptions {
    let c = &shared.config;
    let mut o = MqttOptions::new(c.client_id(), c.host.clone(), c.port());
    o.set_keep_alive(c.keep_alive())
        .set_clean_start(true)
        .set_connection_timeout(CONNECT_TIMEOUT_SECS)
        .set_max_packet_size(Some(MAX_INCOMING))
        .set_last_will(LastWill::new(
            shared.topics.availability(),
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
    // Nagle stays on (rumqttc's default): with it, an event's second PUBLISH leaves with the ACK of
    // the broker's first PUBACK, which releases the broker's own Nagle-held second PUBACK. With
    // TCP_NODELAY here and a stock Mosquitto, that second PUBACK waited for our delayed ACK, up to
    // 40 ms per event when one event is in flight.
    if let Some(user) = &c.username {
        o.set_credentials(user.clone(), c.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &shared.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    o
}

/// Polls the event loop until its connection fails; rumqttc would reconnect on the next poll, but
/// we start a fresh session instead.
async fn drive(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        let event = eventloop.poll().await;
        let failed = event.is_err();
        if tx.send(event).is_err() || failed {
            return;
        }
    }
}

async fn next_change(changes: &mut Option<broadcast::Receiver<CameraInfo>>) -> Option<CameraInfo> {
    loop {
        let Some(rx) = changes.as_mut() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(info) => return Some(info),
            // Fell behind: the caller re-reads every camera.
            Err(broadcast::error::RecvError::Lagged(_)) => return None,
            Err(broadcast::error::RecvError::Closed) => *changes = None,
        }
    }
}

impl Session<'_> {
    /// Waits for the CONNACK, then says hello: availability, subscriptions, discovery, states.
    async fn connect(&mut self) -> Result<(), End> {
        let ack = tokio::select! {
            _ = self.stop.cancelled() => return Err(End::Stopped),
            e = self.events.recv() => e,
        };
        match ack {
            Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                if let Some(max) = ack.properties.and_then(|p| p.max_packet_size) {
                    self.max_packet = self.max_packet.min(max as usize);
                }
            }
            Some(Err(e)) => {
                return Err(End::Lost {
                    error: e.to_string(),
                    connected: false,
                })
            }
            other => return Err(lost(format!("expected a CONNACK, got {other:?}"))),
        }
        self.shared.set_connected(true);
        let topics = &self.shared.topics;
        self.control(topics.availability(), "online".into(), true)
            .await?;
        self.request(self.client.subscribe(topics.commands(), QoS::AtLeastOnce))
            .await?;
        if self.shared.config.discovery {
            let status = topics.homeassistant_status();
            self.request(self.client.subscribe(status, QoS::AtLeastOnce))
                .await?;
            self.announce().await?;
        }
        self.publish_states().await
    }

    /// The session's main loop; returns only to end the session.
    async fn serve(
        &mut self,
        subscription: &mut Subscription,
        changes: &mut Option<broadcast::Receiver<CameraInfo>>,
    ) -> Result<std::convert::Infallible, End> {
        let stop = self.stop.clone();
        loop {
            self.fill(subscription).await?;
            let room = self.has_room();
            tokio::select! {
                _ = stop.cancelled() => return Err(self.goodbye().await),
                event = self.events.recv() => { self.handle(event).await?; }
                changed = subscription.changed(), if room => {
                    if !changed {
                        return Err(self.goodbye().await);
                    }
                }
                change = next_change(changes) => match change {
                    Some(info) => self.publish_state(&info).await?,
                    None => self.publish_states().await?,
                },
            }
        }
    }

    /// True when at most half the window is in flight (or nothing is, for a window of one): reads
    /// then come in batches rather than one event per acknowledgement, which is what keeps the
    /// bridge's throughput up under load. Acknowledgements always come, so nothing waits for long.
    fn has_room(&self) -> bool {
        let window = usize::from(self.shared.config.inflight);
        let n = self.inflight.in_flight();
        n == 0 || n <= window / 2
    }

    /// Publishes events after what was read so far until the window is full or the outbox is read
    /// up to its head.
    async fn fill(&mut self, subscription: &mut Subscription) -> Result<(), End> {
        let window = usize::from(self.shared.config.inflight);
        while self.has_room() {
            let room = window - self.inflight.in_flight();
            let batch = match subscription.try_next(room).await {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "MQTT bridge cannot read the outbox");
                    let stop = self.stop.clone();
                    tokio::select! {
                        _ = stop.cancelled() => return Err(self.goodbye().await),
                        _ = tokio::time::sleep(STORE_ERROR_PAUSE) => continue,
                    }
                }
            };
            for event in &batch.events {
                self.publish_event(event).await?;
            }
            // Everything up to `upto` has been read; filtered events need no answer.
            self.inflight.read_to(batch.upto);
        }
        self.settle();
        Ok(())
    }

    async fn publish_event(&mut self, event: &StoredEvent) -> Result<(), End> {
        let topics = &self.shared.topics;
        let targets = [
            topics.event(event.event_type),
            topics.camera_event(&event.camera_id, event.event_type),
        ];
        let biggest = targets
            .iter()
            .map(|t| packet_size(t, event.json.len()))
            .max();
        if biggest.unwrap_or(0) > self.max_packet {
            tracing::error!(
                event = %event.id, seq = %event.seq, bytes = event.json.len(),
                limit = self.max_packet,
                "MQTT: event too large for the broker; not sent, counted as refused"
            );
            self.inflight.add_event(event, 0, true);
            return Ok(());
        }
        self.inflight.add_event(event, targets.len() as u8, false);
        let payload = Bytes::from(event.json.clone());
        for topic in targets {
            self.inflight.handed(Purpose::Event {
                seq: event.seq,
                topic: topic.clone(),
            });
            self.request(self.client.publish(topic, self.qos, false, payload.clone()))
                .await?;
        }
        let s = self.shared;
        s.counters.published.fetch_add(1, Ordering::Relaxed);
        s.metrics.published.get_or_create(&s.label).inc();
        Ok(())
    }

    /// A message nothing waits on, at QoS 1.
    async fn control(&mut self, topic: String, payload: String, retain: bool) -> Result<(), End> {
        self.inflight.handed(Purpose::Control {
            topic: topic.clone(),
        });
        self.request(
            self.client
                .publish(topic, QoS::AtLeastOnce, retain, payload),
        )
        .await
    }

    /// Hands a request to the client. Normally that is immediate; if the client's queue is full
    /// (the broker stopped reading) and the appliance stops meanwhile, the session ends at once
    /// and the broker's last will says `offline` instead of us.
    async fn request(
        &self,
        request: impl std::future::Future<Output = Result<(), ClientError>>,
    ) -> Result<(), End> {
        tokio::select! {
            biased;
            r = request => r.map_err(lost),
            _ = self.stop.cancelled() => Err(End::Stopped),
        }
    }

    async fn handle(
        &mut self,
        event: Option<Result<Event, ConnectionError>>,
    ) -> Result<Option<Purpose>, End> {
        let event = match event {
            None => return Err(lost("the MQTT event loop ended")),
            Some(Err(e)) => return Err(lost(e)),
            Some(Ok(event)) => event,
        };
        match event {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                self.inflight.sent(pkid);
                if pkid == 0 {
                    self.settle();
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let refused = !matches!(
                    ack.reason,
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                );
                let purpose = self.inflight.acked(ack.pkid, refused);
                if refused {
                    tracing::error!(
                        topic = purpose.as_ref().map_or("?", Purpose::topic),
                        reason = ?ack.reason,
                        "MQTT broker refused a message; it is counted and not sent again"
                    );
                }
                self.settle();
                return Ok(purpose);
            }
            Event::Incoming(Packet::Publish(p)) => self.incoming(p).await?,
            Event::Incoming(Packet::Disconnect(d)) => {
                tracing::warn!(reason = ?d.reason_code, "MQTT broker is closing the session");
            }
            _ => {}
        }
        Ok(None)
    }

    /// Moves the settled position past the events settled at the front, then counts them (in that
    /// order, so that whoever sees a count also sees the position).
    fn settle(&mut self) {
        let s = self.shared;
        let done = self.inflight.take_settled();
        let upto = self.inflight.settled_upto();
        s.settled.send_if_modified(|v| {
            let moved = upto > *v;
            if moved {
                *v = upto;
            }
            moved
        });
        s.counters
            .in_flight
            .store(self.inflight.in_flight() as u64, Ordering::Relaxed);
        let now = now_ms();
        for event in done {
            if event.refused {
                s.counters.refused.fetch_add(1, Ordering::Relaxed);
                s.metrics.refused.get_or_create(&s.label).inc();
                tracing::warn!(event = %event.id, seq = %event.seq, "MQTT event refused");
            } else {
                s.counters.acknowledged.fetch_add(1, Ordering::Relaxed);
                s.metrics.delivered.get_or_create(&s.label).inc();
                s.metrics
                    .event_latency_seconds
                    .get_or_create(&s.label)
                    .observe((now - event.recorded_ms).max(0) as f64 / 1000.0);
            }
        }
    }

    /// A message on one of our subscriptions: a camera command or Home Assistant's status.
    async fn incoming(&mut self, p: Publish) -> Result<(), End> {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let payload = String::from_utf8_lossy(&p.payload)
            .trim()
            .to_ascii_uppercase();
        let s = self.shared;
        if s.config.discovery && topic == s.topics.homeassistant_status() {
            if payload == "ONLINE" {
                tracing::info!("Home Assistant is online; announcing the cameras again");
                self.announce().await?;
                self.publish_states().await?;
            }
            return Ok(());
        }
        let Some(level) = s.topics.command_camera(&topic) else {
            return Ok(());
        };
        s.counters.commands.fetch_add(1, Ordering::Relaxed);
        if p.retain {
            // A retained command is an old instruction: a camera must not start because of it.
            tracing::warn!(topic, "ignoring a retained MQTT camera command");
            return Ok(());
        }
        let on = match payload.as_str() {
            "ON" => true,
            "OFF" => false,
            _ => {
                tracing::warn!(topic, payload, "MQTT camera command must be ON or OFF");
                return Ok(());
            }
        };
        let camera = s
            .cameras
            .cameras()
            .into_iter()
            .find(|c| topics::level(&c.id) == level);
        let Some(camera) = camera else {
            tracing::warn!(topic, "MQTT command for an unknown camera");
            return Ok(());
        };
        tracing::info!(camera = %camera.id, on, "MQTT camera command");
        if let Err(e) = s.cameras.set_running(&camera.id, on) {
            tracing::warn!(camera = %camera.id, error = %e, "MQTT camera command failed");
            // Home Assistant's switch flipped optimistically; tell it the real state.
            if let Some(now) = s.cameras.camera(&camera.id) {
                self.publish_state(&now).await?;
            }
        }
        Ok(())
    }

    async fn announce(&mut self) -> Result<(), End> {
        let s = self.shared;
        let cameras = s.cameras.cameras();
        let all = discovery::announcements(
            &s.topics,
            &s.config.device_id,
            s.config.stranger_off_delay,
            &cameras,
        );
        for a in all {
            self.control(a.topic, a.payload, true).await?;
        }
        Ok(())
    }

    async fn publish_state(&mut self, camera: &CameraInfo) -> Result<(), End> {
        let topic = self.shared.topics.camera_state(&camera.id);
        let state = if camera.running { "ON" } else { "OFF" };
        self.control(topic, state.into(), true).await
    }

    async fn publish_states(&mut self) -> Result<(), End> {
        for camera in self.shared.cameras.cameras() {
            self.publish_state(&camera).await?;
        }
        Ok(())
    }

    /// A clean stop: `offline` (a clean DISCONNECT does not fire the will), then DISCONNECT, each
    /// waited for a short while. Acknowledgements arriving meanwhile still settle their events.
    async fn goodbye(&mut self) -> End {
        let availability = self.shared.topics.availability();
        if self
            .control(availability.clone(), "offline".into(), true)
            .await
            .is_err()
        {
            return End::Stopped;
        }
        let said = async {
            loop {
                let event = self.events.recv().await;
                match self.handle(event).await {
                    Ok(Some(Purpose::Control { topic })) if topic == availability => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        };
        if !matches!(tokio::time::timeout(GOODBYE_TIMEOUT, said).await, Ok(true)) {
            return End::Stopped;
        }
        let disconnect = tokio::time::timeout(GOODBYE_TIMEOUT, self.client.disconnect()).await;
        if matches!(disconnect, Ok(Ok(()))) {
            let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
                while let Some(Ok(e)) = self.events.recv().await {
                    if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
                        return;
                    }
                }
            })
            .await;
        }
        End::Stopped
    }
}

/// The size of a PUBLISH packet carrying `payload` bytes to `topic`: fixed header (at most 5),
/// topic (2 + n), packet id (2), properties length (1).
fn packet_size(topic: &str, payload: usize) -> usize {
    5 + 2 + topic.len() + 2 + 1 + payload
}

//! Which events the broker has acknowledged, and so how far the cursor may move.
//!
//! rumqttc tells us a publish's packet id only when its event loop sends it (`Outgoing::Publish`),
//! in the order the publishes were handed to the client; acknowledgements come back by packet id, in
//! whatever order the broker likes. So:
//! * every publish handed to the client is queued with its [`Purpose`]; each `Outgoing::Publish`
//!   takes the oldest and files it under its packet id (packet id 0 is QoS 0: done once written);
//! * each acknowledgement settles one publish; an event is settled when both of its publishes
//!   (the type topic and the camera topic) are;
//! * the cursor may move to just before the oldest unsettled event: everything below it is settled
//!   even if the broker acknowledged out of order.
//!
//! A refusal (a PUBACK reason code of 0x80 or more) settles a publish too, since sending it again
//! would be refused again; the event is reported as refused so that it is logged and counted.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::events::{EventId, Seq, StoredEvent};

/// What a publish handed to the client is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// One of an event's messages.
    Event { seq: Seq, topic: String },
    /// Availability, discovery, camera state: nothing waits on these.
    Control { topic: String },
}

impl Purpose {
    pub fn topic(&self) -> &str {
        match self {
            Purpose::Event { topic, .. } | Purpose::Control { topic } => topic,
        }
    }
}

/// An event whose publishes are not all settled.
#[derive(Debug)]
struct Pending {
    id: EventId,
    remaining: u8,
    refused: bool,
    recorded_ms: i64,
}

/// An event every message of which is settled, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub seq: Seq,
    pub id: EventId,
    /// At least one of its messages was refused (by the broker, or here for its size).
    pub refused: bool,
    pub recorded_ms: i64,
}

#[derive(Debug)]
pub struct Inflight {
    handed: VecDeque<Purpose>,
    by_pkid: HashMap<u16, Purpose>,
    events: BTreeMap<Seq, Pending>,
    /// Every event up to here has been read from the outbox: published, refused, or filtered out.
    read_upto: Seq,
}

impl Inflight {
    /// Nothing in flight; the outbox has been read up to `cursor`.
    pub fn new(cursor: Seq) -> Inflight {
        Inflight {
            handed: VecDeque::new(),
            by_pkid: HashMap::new(),
            events: BTreeMap::new(),
            read_upto: cursor,
        }
    }

    /// Events published and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.events.len()
    }

    /// The outbox has been read up to `seq` (events filtered out in between need no answer).
    pub fn read_to(&mut self, seq: Seq) {
        self.read_upto = self.read_upto.max(seq);
    }

    /// An event that goes out as `messages` publishes (0: refused before sending).
    pub fn add_event(&mut self, event: &StoredEvent, messages: u8, refused: bool) {
        self.events.insert(
            event.seq,
            Pending {
                id: event.id.clone(),
                remaining: messages,
                refused,
                recorded_ms: event.recorded_ms,
            },
        );
        self.read_to(event.seq);
    }

    /// A publish was handed to the client; call in the same order as the client calls.
    pub fn handed(&mut self, purpose: Purpose) {
        self.handed.push_back(purpose);
    }

    /// The event loop wrote the oldest handed publish under `pkid`. QoS 0 (pkid 0) is settled now.
    pub fn sent(&mut self, pkid: u16) -> Option<Purpose> {
        let purpose = self.handed.pop_front()?;
        if pkid == 0 {
            self.settle(&purpose, false);
        } else {
            self.by_pkid.insert(pkid, purpose.clone());
        }
        Some(purpose)
    }

    /// The broker acknowledged `pkid`, accepting it or not. Returns what it was for (`None` for an
    /// id we never sent in this session).
    pub fn acked(&mut self, pkid: u16, refused: bool) -> Option<Purpose> {
        let purpose = self.by_pkid.remove(&pkid)?;
        self.settle(&purpose, refused);
        Some(purpose)
    }

    fn settle(&mut self, purpose: &Purpose, refused: bool) {
        if let Purpose::Event { seq, .. } = purpose {
            if let Some(p) = self.events.get_mut(seq) {
                p.remaining = p.remaining.saturating_sub(1);
                p.refused |= refused;
            }
        }
    }

    /// Takes the settled events at the front, oldest first.
    pub fn take_settled(&mut self) -> Vec<Settled> {
        let mut out = Vec::new();
        while let Some(entry) = self.events.first_entry() {
            if entry.get().remaining > 0 {
                break;
            }
            let (seq, p) = entry.remove_entry();
            out.push(Settled {
                seq,
                id: p.id,
                refused: p.refused,
                recorded_ms: p.recorded_ms,
            });
        }
        out
    }

    /// The cursor may move here: every event at or below it is settled or was never to be sent.
    pub fn settled_upto(&self) -> Seq {
        match self.events.first_key_value() {
            Some((first, _)) => Seq(first.0 - 1),
            None => self.read_upto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;

    fn event(seq: i64) -> StoredEvent {
        StoredEvent {
            seq: Seq(seq),
            id: EventId(format!("evt_{seq}")),
            event_type: EventType::FaceDetected,
            camera_id: "cam".into(),
            json: "{}".into(),
            recorded_ms: 0,
        }
    }

    /// Hands both messages of each event to a pretend client.
    fn publish(f: &mut Inflight, seqs: &[i64]) {
        for &s in seqs {
            f.add_event(&event(s), 2, false);
            for topic in ["type", "camera"] {
                f.handed(Purpose::Event {
                    seq: Seq(s),
                    topic: topic.into(),
                });
            }
        }
    }

    #[test]
    fn an_event_counts_once_both_of_its_messages_are_acknowledged() {
        let mut f = Inflight::new(Seq(10));
        publish(&mut f, &[11, 12]);
        for pkid in 1..=4 {
            f.sent(pkid);
        }
        assert_eq!(f.settled_upto(), Seq(10));
        f.acked(1, false);
        assert_eq!(
            f.settled_upto(),
            Seq(10),
            "one of two messages is not enough"
        );
        f.acked(2, false);
        let done = f.take_settled();
        assert_eq!(done.len(), 1);
        assert_eq!(f.settled_upto(), Seq(11));
    }

    #[test]
    fn out_of_order_acknowledgements_move_the_cursor_only_past_a_settled_prefix() {
        let mut f = Inflight::new(Seq(0));
        publish(&mut f, &[1, 2, 3]);
        for pkid in 1..=6 {
            f.sent(pkid);
        }
        for pkid in [3, 4, 5, 6] {
            f.acked(pkid, false);
        }
        assert!(f.take_settled().is_empty(), "event 1 still waits");
        assert_eq!(f.settled_upto(), Seq(0));
        f.acked(2, false);
        f.acked(1, false);
        let done: Vec<i64> = f.take_settled().iter().map(|s| s.seq.0).collect();
        assert_eq!(done, [1, 2, 3]);
        assert_eq!(f.settled_upto(), Seq(3));
    }

    #[test]
    fn control_messages_interleave_without_disturbing_events() {
        let mut f = Inflight::new(Seq(0));
        f.handed(Purpose::Control {
            topic: "availability".into(),
        });
        publish(&mut f, &[1]);
        assert_eq!(
            f.sent(7),
            Some(Purpose::Control {
                topic: "availability".into()
            })
        );
        f.sent(8);
        f.sent(9);
        f.acked(7, false);
        assert_eq!(f.settled_upto(), Seq(0));
        f.acked(8, false);
        f.acked(9, false);
        f.take_settled();
        assert_eq!(f.settled_upto(), Seq(1));
    }

    #[test]
    fn refusals_settle_but_are_reported_and_qos0_settles_when_written() {
        let mut f = Inflight::new(Seq(0));
        publish(&mut f, &[1]);
        f.sent(1);
        f.sent(2);
        f.acked(1, false);
        f.acked(2, true);
        let done = f.take_settled();
        assert!(done[0].refused);

        publish(&mut f, &[2]);
        f.sent(0);
        f.sent(0);
        assert_eq!(f.take_settled().len(), 1);
        assert_eq!(f.settled_upto(), Seq(2));
        assert_eq!(f.acked(99, false), None, "unknown ids are ignored");
    }

    #[test]
    fn filtered_events_and_oversized_ones_do_not_hold_the_cursor() {
        let mut f = Inflight::new(Seq(0));
        f.add_event(&event(4), 0, true);
        f.read_to(Seq(9));
        let done = f.take_settled();
        assert!(done[0].refused);
        assert_eq!(f.settled_upto(), Seq(9));
    }
}

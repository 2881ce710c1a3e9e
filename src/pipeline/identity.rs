//! Who a track is, decided from the views of it that were embedded, and when it needs another.
//!
//! Embedding is most of a frame's cost, and a face seen a moment ago is still the same face: so a
//! track is embedded when it is new, while its identity is undecided or in doubt, when it may have
//! changed hands (it crossed another track, or came back after being lost), when a clearly better
//! view of it appears, and every `recheck` seconds (so two people who swap places are put right
//! even if the tracker followed the wrong one). Every other frame reuses the track's identity, so
//! a group standing in view costs detection, not one embedding per person per frame.
//!
//! The identity comes from the views together:
//! * one view that matches with a clear margin (over the threshold and over every other person)
//!   decides at once, so a person is named on the frame they appear;
//! * ambiguous views (over the threshold, but close to it or to someone else) decide only when a
//!   majority of at least three agree, and the track keeps looking, for at most `max_views` views,
//!   after which it is looked at only every `recheck`;
//! * a stranger needs `stranger_views` unknown views in a row, and is looked at on each of its
//!   first `max_views` frames, so that its alert, too, comes from a frame that confirms it;
//! * a decided track that disagrees with itself twice running becomes undecided again, and a clear
//!   view of someone else renames it at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// An enrolled person a face matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Who: a track's views are counted by it.
    pub person_id: String,
    pub name: String,
    /// Which enrolled photo matched (`faces.id`), so that a wrong recognition can be traced to
    /// the photo that caused it.
    pub face_id: String,
    pub similarity: f32,
    pub metadata: Map<String, Value>,
}

/// What the gallery said of one embedded view of a track.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `None` when no enrolled person reached the threshold.
    pub identity: Option<Identity>,
    /// The best similarity in the gallery, above the threshold or not (0 with an empty gallery).
    pub similarity: f32,
    /// The match is over the threshold by `clear_margin` and ahead of every other person by as
    /// much: enough to decide from this view alone.
    pub clear: bool,
}

impl View {
    /// Judges a match: `best` is the most similar enrolled person (if any), `rival` the best
    /// similarity of anyone else (0 if nobody), `threshold` the gallery's.
    pub fn judge(
        best: Option<Identity>,
        best_similarity: f32,
        rival: f32,
        threshold: f32,
        clear_margin: f32,
    ) -> View {
        let identity = best.filter(|_| best_similarity >= threshold);
        let clear = identity.is_some()
            && best_similarity >= threshold + clear_margin
            && best_similarity - rival >= clear_margin;
        View {
            identity,
            similarity: best_similarity,
            clear,
        }
    }

    fn person(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.person_id.as_str())
    }
}

/// The settled verdict on a track.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough agreeing views yet.
    Undecided,
    Known(Identity),
    /// Unknown in `stranger_views` views in a row.
    Unknown,
}

/// How a camera decides who its tracks are. Not in the config file: the defaults are the
/// measured ones (`tests/tracking.rs`, `benches/pipeline.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdentityConfig {
    /// A decided track is embedded again after this long.
    pub recheck: Duration,
    /// A view this many times better ranked (`Quality::rank`) than the best one so far is
    /// embedded too.
    pub better_view: f32,
    /// How far over the threshold, and over every other person, a match is clear.
    pub clear_margin: f32,
    /// Views an undecided track takes in a row before it waits `recheck` between views.
    pub max_views: usize,
    /// Unknown views in a row that make a stranger.
    pub stranger_views: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            recheck: Duration::from_secs(3),
            better_view: 1.25,
            clear_margin: 0.1,
            max_views: 6,
            stranger_views: 3,
        }
    }
}

/// Why a track is to be embedded on this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    New,
    Undecided,
    /// It crossed another track or came back after being missed: it may be someone else now.
    Contested,
    /// The last view disagreed with the verdict.
    Doubt,
    Recheck,
    BetterView,
}

/// A track's views and what they decided.
#[derive(Debug, Clone)]
pub struct TrackIdentity {
    verdict: Verdict,
    /// The latest views, at most `max_views`.
    views: VecDeque<View>,
    /// Views that agree with the verdict since it was reached.
    agreeing: u32,
    /// Views in a row that disagree with a decided verdict.
    doubt: u32,
    contested: bool,
    last_view: Option<Instant>,
    /// The best `Quality::rank` embedded so far.
    best_rank: f32,
    /// The latest view's best similarity (what an Unknown face reports).
    similarity: f32,
}

impl TrackIdentity {
    pub fn new(config: &IdentityConfig) -> Self {
        TrackIdentity {
            verdict: Verdict::Undecided,
            views: VecDeque::with_capacity(config.max_views),
            agreeing: 0,
            doubt: 0,
            contested: false,
            last_view: None,
            best_rank: 0.0,
            similarity: 0.0,
        }
    }

    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Views that decided the verdict and have agreed with it since (0 while undecided).
    pub fn views(&self) -> u32 {
        match self.verdict {
            Verdict::Undecided => 0,
            _ => self.agreeing,
        }
    }

    /// The latest view's best similarity in the gallery.
    pub fn similarity(&self) -> f32 {
        self.similarity
    }

    /// The track may have changed hands: no announcement until a view confirms who it is.
    pub fn contest(&mut self) {
        self.contested = true;
    }

    /// Whether a view of rank `rank` should be embedded now, and why.
    pub fn needs_look(&self, rank: f32, now: Instant, config: &IdentityConfig) -> Option<Look> {
        let Some(last) = self.last_view else {
            return Some(Look::New);
        };
        let due = now.saturating_duration_since(last) >= config.recheck;
        if self.contested {
            return Some(Look::Contested);
        }
        match self.verdict {
            Verdict::Undecided if self.views.len() < config.max_views || due => {
                Some(Look::Undecided)
            }
            Verdict::Undecided => None,
            _ if self.doubt > 0 => Some(Look::Doubt),
            // A stranger is alerted on a frame that confirms it (the policy's
            // `stranger_min_frames`): it is looked at on each of its first frames.
            Verdict::Unknown if (self.agreeing as usize) < config.max_views => {
                Some(Look::Undecided)
            }
            _ if due => Some(Look::Recheck),
            _ if rank >= self.best_rank * config.better_view => Some(Look::BetterView),
            _ => None,
        }
    }

    /// Whether the verdict may be announced on the frame at `now`: a view of the face was taken
    /// on that very frame (never from memory: since the last view the tracker may have followed
    /// someone else), it did not leave the verdict in doubt, and nothing contested the track
    /// since.
    pub fn confirmed(&self, now: Instant) -> bool {
        !self.contested && self.doubt == 0 && self.last_view == Some(now)
    }

    /// Takes one embedded view (of rank `rank`) into the verdict.
    pub fn add(&mut self, view: View, rank: f32, now: Instant, config: &IdentityConfig) {
        self.last_view = Some(now);
        self.best_rank = self.best_rank.max(rank);
        self.contested = false;
        self.similarity = view.similarity;
        if self.views.len() == config.max_views.max(1) {
            self.views.pop_front();
        }
        let agrees = match &self.verdict {
            Verdict::Undecided => None,
            Verdict::Known(id) => Some(view.person() == Some(id.person_id.as_str())),
            Verdict::Unknown => Some(view.identity.is_none()),
        };
        let clear = view.clear.then(|| view.identity.clone()).flatten();
        let seen = view.identity.clone();
        self.views.push_back(view);
        match agrees {
            None => self.decide(config),
            Some(true) => {
                self.doubt = 0;
                self.agreeing += 1;
                if let (Verdict::Known(id), Some(seen)) = (&mut self.verdict, seen) {
                    if seen.similarity > id.similarity {
                        *id = seen;
                    }
                }
            }
            Some(false) => match clear {
                Some(someone) => self.settle(Verdict::Known(someone), 1),
                None => {
                    self.doubt += 1;
                    if self.doubt >= 2 {
                        // Only the views since the doubt began decide now.
                        let keep = self.doubt as usize;
                        while self.views.len() > keep {
                            self.views.pop_front();
                        }
                        self.verdict = Verdict::Undecided;
                        self.doubt = 0;
                        self.decide(config);
                    }
                }
            },
        }
    }

    fn settle(&mut self, verdict: Verdict, agreeing: u32) {
        self.verdict = verdict;
        self.agreeing = agreeing;
        self.doubt = 0;
    }

    /// An undecided track's verdict from its views.
    fn decide(&mut self, config: &IdentityConfig) {
        let Some(newest) = self.views.back() else {
            return;
        };
        if newest.clear {
            let id = newest.identity.clone().expect("clear views match");
            let votes = self.votes(&id.person_id);
            return self.settle(Verdict::Known(self.best_of(id)), votes);
        }
        let n = self.views.len();
        let (leader, votes) = self.leader();
        if let Some(id) = leader.clone() {
            if votes >= 3 && votes * 2 > n as u32 {
                return self.settle(Verdict::Known(self.best_of(id)), votes);
            }
        }
        let unknown_run = self
            .views
            .iter()
            .rev()
            .take_while(|v| v.identity.is_none())
            .count();
        if unknown_run >= config.stranger_views {
            return self.settle(Verdict::Unknown, unknown_run as u32);
        }
        if n >= config.max_views {
            // Out of patience: a plain majority decides, or the track stays undecided and is
            // looked at only every `recheck`.
            let unknown = self.views.iter().filter(|v| v.identity.is_none()).count() as u32;
            match leader {
                Some(id) if votes * 2 > n as u32 => {
                    self.settle(Verdict::Known(self.best_of(id)), votes)
                }
                _ if unknown * 2 > n as u32 => self.settle(Verdict::Unknown, unknown),
                _ => {}
            }
        }
    }

    fn votes(&self, person: &str) -> u32 {
        self.views
            .iter()
            .filter(|v| v.person() == Some(person))
            .count() as u32
    }

    /// The person most views name, with their count (ties: the higher similarity).
    fn leader(&self) -> (Option<Identity>, u32) {
        let mut best: Option<(&Identity, u32)> = None;
        for id in self.views.iter().filter_map(|v| v.identity.as_ref()) {
            let votes = self.votes(&id.person_id);
            match best {
                Some((b, v)) if v > votes || (v == votes && b.similarity >= id.similarity) => {}
                _ => best = Some((id, votes)),
            }
        }
        match best {
            Some((id, votes)) => (Some(id.clone()), votes),
            None => (None, 0),
        }
    }

    /// `id` with the best similarity any view of the same person had.
    fn best_of(&self, mut id: Identity) -> Identity {
        for seen in self.views.iter().filter_map(|v| v.identity.as_ref()) {
            if seen.person_id == id.person_id && seen.similarity > id.similarity {
                id = seen.clone();
            }
        }
        id
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn person(name: &str, similarity: f32) -> Identity {
        Identity {
            face_id: format!("face_{name}"),
            person_id: format!("id_{name}"),
            name: name.into(),
            similarity,
            metadata: Map::new(),
        }
    }

    /// A view as the runner judges it, with the default margin and a threshold of 0.55.
    pub(crate) fn view(name: Option<&str>, similarity: f32, rival: f32) -> View {
        View::judge(
            name.map(|n| person(n, similarity)),
            similarity,
            rival,
            0.55,
            0.1,
        )
    }

    #[test]
    fn a_clear_match_decides_at_once_and_the_track_then_rests() {
        let c = IdentityConfig::default();
        let t0 = Instant::now();
        let mut t = TrackIdentity::new(&c);
        assert_eq!(t.needs_look(0.5, t0, &c), Some(Look::New));
        t.add(view(Some("Ana"), 0.8, 0.3), 0.5, t0, &c);
        assert!(matches!(t.verdict(), Verdict::Known(id) if id.name == "Ana"));
        assert_eq!(t.views(), 1);
        assert!(t.confirmed(t0));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            t.needs_look(0.5, t1, &c),
            None,
            "no embedding on the next frames"
        );
        assert_eq!(t.needs_look(0.7, t1, &c), Some(Look::BetterView));
        assert_eq!(t.needs_look(0.5, t0 + c.recheck, &c), Some(Look::Recheck));
        assert!(
            !t.confirmed(t0 + c.recheck * 2),
            "not announced from memory"
        );
    }

    #[test]
    fn ambiguous_views_wait_for_a_majority_of_three() {
        let c = IdentityConfig::default();
        let now = Instant::now();
        let mut t = TrackIdentity::new(&c);
        // Over the threshold, but Bo is close behind: not clear.
        for _ in 0..2 {
            t.add(view(Some("Ana"), 0.6, 0.55), 0.5, now, &c);
            assert_eq!(t.verdict(), &Verdict::Undecided);
            assert_eq!(t.needs_look(0.5, now, &c), Some(Look::Undecided));
        }
        t.add(view(Some("Ana"), 0.62, 0.5), 0.5, now, &c);
        match t.verdict() {
            Verdict::Known(id) => assert_eq!((id.name.as_str(), id.similarity), ("Ana", 0.62)),
            v => panic!("{v:?}"),
        }
        assert_eq!(t.views(), 3);
    }

    #[test]
    fn a_stranger_needs_unknown_views_in_a_row_and_patience_is_bounded() {
        let c = IdentityConfig::default();
        let now = Instant::now();
        let mut t = TrackIdentity::new(&c);
        t.add(view(None, 0.3, 0.2), 0.5, now, &c);
        t.add(view(None, 0.3, 0.2), 0.5, now, &c);
        assert_eq!(
            t.verdict(),
            &Verdict::Undecided,
            "two views are not yet a stranger"
        );
        t.add(view(None, 0.31, 0.2), 0.5, now, &c);
        assert_eq!(t.verdict(), &Verdict::Unknown);
        assert_eq!((t.views(), t.similarity()), (3, 0.31));
        // Still looked at on each frame until max_views, so the alert comes from a fresh view.
        for _ in 3..c.max_views {
            assert_eq!(t.needs_look(0.5, now, &c), Some(Look::Undecided));
            t.add(view(None, 0.3, 0.2), 0.5, now, &c);
        }
        assert_eq!(t.needs_look(0.5, now, &c), None);

        // Views that never agree: after max_views the track rests until the recheck.
        let mut u = TrackIdentity::new(&c);
        for i in 0..c.max_views {
            let name = ["Ana", "Bo", "Cy"][i % 3];
            u.add(view(Some(name), 0.58, 0.56), 0.5, now, &c);
        }
        assert_eq!(u.verdict(), &Verdict::Undecided);
        assert_eq!(u.needs_look(0.5, now, &c), None);
        assert_eq!(
            u.needs_look(0.5, now + c.recheck, &c),
            Some(Look::Undecided)
        );
    }

    #[test]
    fn a_clear_view_of_someone_else_renames_and_doubt_undecides() {
        let c = IdentityConfig::default();
        let now = Instant::now();
        let mut t = TrackIdentity::new(&c);
        t.add(view(Some("Ana"), 0.8, 0.3), 0.5, now, &c);
        t.contest();
        assert!(!t.confirmed(now));
        assert_eq!(t.needs_look(0.1, now, &c), Some(Look::Contested));
        t.add(view(Some("Bo"), 0.85, 0.3), 0.5, now, &c);
        assert!(matches!(t.verdict(), Verdict::Known(id) if id.name == "Bo"));
        assert!(t.confirmed(now));

        // One unclear disagreeing view is doubt (not announced), two undecide.
        t.add(view(None, 0.4, 0.3), 0.5, now, &c);
        assert!(matches!(t.verdict(), Verdict::Known(id) if id.name == "Bo"));
        assert!(!t.confirmed(now));
        assert_eq!(t.needs_look(0.1, now, &c), Some(Look::Doubt));
        t.add(view(None, 0.4, 0.3), 0.5, now, &c);
        assert_eq!(t.verdict(), &Verdict::Undecided);
        t.add(view(None, 0.4, 0.3), 0.5, now, &c);
        assert_eq!(
            t.verdict(),
            &Verdict::Unknown,
            "three unknown views in a row"
        );
    }
}

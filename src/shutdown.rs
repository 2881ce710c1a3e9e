//! One way to stop, for async tasks and blocking threads alike.
//!
//! The appliance runs two kinds of work: tasks on the tokio runtime (the API, the sinks, the
//! watchdog) and plain threads that block (each camera's loop, its capture thread, a pipe
//! source's `read` on `ffmpeg`'s stdout). Both must stop promptly when asked, so both listen to
//! the same signal: a [`Shutdown`].
//!
//! The protocol, all of it:
//! * A `Shutdown` is cancelled once, by anyone holding it ([`Shutdown::cancel`]); it never comes
//!   back. Clones share the signal. Dropping one cancels nothing.
//! * Async code waits with `select!` on [`Shutdown::cancelled`] and checks
//!   [`Shutdown::is_cancelled`]; the names are `tokio_util`'s `CancellationToken`'s, which this type
//!   is built on, so code written against one reads the same against the other.
//! * Blocking code sleeps with [`Shutdown::sleep_until`], which returns at once on cancel, and
//!   checks `is_cancelled` between blocking calls that have their own short timeouts (v4l2's poll).
//!   A call that blocks without a timeout is made to return by killing what it waits on: a pipe
//!   source registers its command's process group ([`Shutdown::kill_on_cancel`]), so a cancel
//!   kills the command and the read ends.
//! * [`Shutdown::child_token`] makes a child: cancelled with its parent, but it can be cancelled
//!   alone. The tree follows the appliance: one child for the cameras, one per camera, one per
//!   capture, one per opening of a source. Stopping one camera cancels its child; stopping the
//!   appliance cancels the root, and a camera tells the two apart by asking its parent.
//!
//! The order in which the parts stop is `App::shutdown`'s (`app.rs`); this type only carries the
//! signal.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

/// The signal to stop; see the module comment. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    /// The async side, and the one truth of whether this is cancelled (a parent's cancel marks
    /// every child token before it returns).
    token: CancellationToken,
    /// The blocking side: a condvar to wake sleepers, and what to kill.
    node: Arc<Node>,
}

#[derive(Debug, Default)]
struct Node {
    state: Mutex<NodeState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct NodeState {
    /// Children to wake when this is cancelled; weak, so a child that is dropped is forgotten.
    children: Vec<Weak<Node>>,
    /// A process group to SIGKILL on cancel (a pipe source's command).
    process_group: Option<libc::pid_t>,
}

impl Shutdown {
    /// A root: cancelled only by its own [`Shutdown::cancel`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels this and every child, grandchild …: async waiters are woken, blocking sleepers
    /// return, registered process groups are killed. Cancelling again does nothing.
    pub fn cancel(&self) {
        // The token first: a sleeper that wakes must find it cancelled.
        self.token.cancel();
        self.node.wake_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once this is cancelled (at once if it already is).
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// [`Shutdown::cancelled`] holding its own handle, for a future that must be `'static`.
    pub fn cancelled_owned(self) -> WaitForCancellationFutureOwned {
        self.token.cancelled_owned()
    }

    /// A child: cancelled when this is, and cancellable alone without touching this or its
    /// siblings. A child of a cancelled parent is born cancelled.
    pub fn child_token(&self) -> Shutdown {
        let child = Shutdown {
            token: self.token.child_token(),
            node: Arc::default(),
        };
        let mut state = lock(&self.node.state);
        state.children.retain(|c| c.strong_count() > 0);
        state.children.push(Arc::downgrade(&child.node));
        child
    }

    /// Sleeps until `deadline` on this thread; returns `false` as soon as this is cancelled (at
    /// once if it already is), `true` if the deadline came first.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        let mut state = lock(&self.node.state);
        loop {
            // Checked under the node's lock, which `cancel` takes after marking the token: a
            // cancel cannot fall between this check and the wait.
            if self.is_cancelled() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            state = match self.node.wake.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Has process group `pgid` killed (SIGKILL) when this is cancelled, or at once if it already
    /// is. One group per `Shutdown`: give each source opening its own child.
    pub fn kill_on_cancel(&self, pgid: libc::pid_t) {
        let mut state = lock(&self.node.state);
        if self.is_cancelled() {
            kill_group(pgid);
        } else {
            state.process_group = Some(pgid);
        }
    }

    /// Forgets the process group: call before reaping the process, so that a later cancel never
    /// signals a group id the kernel may have given to someone else.
    pub fn forget_process_group(&self) {
        lock(&self.node.state).process_group = None;
    }
}

impl Node {
    fn wake_all(&self) {
        let children = {
            let mut state = lock(&self.state);
            if let Some(pgid) = state.process_group.take() {
                kill_group(pgid);
            }
            self.wake.notify_all();
            std::mem::take(&mut state.children)
        };
        for child in children.iter().filter_map(Weak::upgrade) {
            child.wake_all();
        }
    }
}

fn kill_group(pgid: libc::pid_t) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        // The group is one a pipe source made and has not reaped (it forgets it first).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// A poisoned lock only means a thread panicked while holding it; the state is still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::time::Duration;

    #[test]
    fn a_cancel_wakes_a_sleeping_thread_at_once_even_through_its_parent() {
        let root = Shutdown::new();
        let camera = root.child_token();
        let capture = camera.child_token();
        let sleeper = std::thread::spawn(move || {
            let t = Instant::now();
            (
                capture.sleep_until(t + Duration::from_secs(60)),
                t.elapsed(),
            )
        });
        std::thread::sleep(Duration::from_millis(50));
        root.cancel();
        let (slept, took) = sleeper.join().unwrap();
        assert!(!slept, "the sleep says it was cut short");
        assert!(took < Duration::from_secs(1), "woke after {took:?}");
        // And a sleep after the cancel does not start.
        assert!(!camera.sleep_until(Instant::now() + Duration::from_secs(60)));
    }

    #[test]
    fn a_sleep_that_is_not_cancelled_lasts_until_its_deadline() {
        let stop = Shutdown::new();
        let t = Instant::now();
        assert!(stop.sleep_until(t + Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_child_stops_with_its_parent_but_a_parent_not_with_its_child() {
        let root = Shutdown::new();
        let (a, b) = (root.child_token(), root.child_token());
        let a_of_a = a.child_token();
        a.cancel();
        assert!(a.is_cancelled() && a_of_a.is_cancelled());
        assert!(
            !root.is_cancelled() && !b.is_cancelled(),
            "parent and sibling run on"
        );
        a_of_a.cancelled().await;

        let waiting = tokio::spawn(b.clone().cancelled_owned());
        root.cancel();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the child's future completes when the root is cancelled")
            .unwrap();
        assert!(root.child_token().is_cancelled(), "born cancelled");
    }

    fn spawn_group() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[test]
    fn a_cancel_kills_the_registered_process_group() {
        let camera = Shutdown::new();
        let source = camera.child_token();
        let mut child = spawn_group();
        source.kill_on_cancel(child.id() as libc::pid_t);
        let t = Instant::now();
        camera.cancel();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert!(t.elapsed() < Duration::from_secs(5));

        // Registered after the cancel: killed at once.
        let mut late = spawn_group();
        source.kill_on_cancel(late.id() as libc::pid_t);
        assert_eq!(late.wait().unwrap().signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn a_forgotten_process_group_is_left_alone() {
        let stop = Shutdown::new();
        let mut child = spawn_group();
        stop.kill_on_cancel(child.id() as libc::pid_t);
        stop.forget_process_group();
        stop.cancel();
        std::thread::sleep(Duration::from_millis(100));
        assert!(child.try_wait().unwrap().is_none(), "still running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

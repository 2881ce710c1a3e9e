//! Keeps a test's traffic on this machine: a test that makes the appliance dial addresses it was
//! given or invented (webhook URLs, camera URLs, generated input) runs inside a network namespace
//! that has only loopback, so nothing it dials can leave the machine whatever the input says.
//!
//! The test harness cannot move a running test into a namespace, so [`loopback_only`] re-runs the
//! one test in a child of `unshare -n` (as root, which CI is) and reports whether the caller is the
//! isolated run. Outside CI, without root, such a test is skipped with a message; in CI it fails,
//! so a dialling test never silently runs on the open network nor silently never runs.

use std::process::Command;

const CHILD_MARK: &str = "FACECV_TEST_NETNS_CHILD";

/// The interfaces of this process's network namespace (from `/proc/self/net/dev`, which follows
/// the namespace; `/sys/class/net` follows the mount and would still list the host's).
pub fn interfaces() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// True when the caller runs inside a namespace with only loopback and should go on; false when
/// the test was run in such a namespace as a child process (and passed) or skipped, and the caller
/// should return at once. `test` is the harness's name of the test, e.g. `cameras::rtsp_argv`.
pub fn loopback_only(test: &str) -> bool {
    if interfaces() == ["lo"] {
        return true;
    }
    assert!(
        std::env::var_os(CHILD_MARK).is_none(),
        "the re-run of {test} is still not in a loopback-only namespace: {:?}",
        interfaces()
    );
    let exe = std::env::current_exe().expect("the test binary's path");
    // An `#[ignore]`d test run on request must run in the child too, or the child would skip it
    // and report success.
    let ignored: Vec<String> = std::env::args()
        .filter(|a| a == "--ignored" || a == "--include-ignored")
        .collect();
    let status = Command::new("unshare")
        .args([
            "-n",
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
        ])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .args(&ignored)
        .env(CHILD_MARK, "1")
        .status();
    match status {
        Ok(s) if s.success() => false,
        Ok(s) => panic!("{test} failed inside its loopback-only network namespace ({s})"),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped {test}: it needs a loopback-only network namespace (run as root with unshare and ip): {e}");
            false
        }
        Err(e) => panic!("{test} needs a loopback-only network namespace and unshare failed: {e}"),
    }
}

//! The abuse suite: what an attacker, a careless installer and a bad day for the hardware do to
//! the appliance, each case a requirement that once broke it. Each module is one kind of abuse;
//! tests that make the appliance dial what they give it run in a loopback-only network namespace
//! (`common::netns`).

mod api_guard;
#[path = "../common/mod.rs"]
mod common;
mod connections;
mod images;
mod parsers;
mod sources;
mod store;

/// The namespace helper itself: inside it there is loopback and nothing else.
#[test]
fn dialling_tests_see_only_loopback() {
    if !common::netns::loopback_only("dialling_tests_see_only_loopback") {
        return;
    }
    assert_eq!(common::netns::interfaces(), ["lo"]);
    std::net::TcpListener::bind("127.0.0.1:0").expect("loopback is up");
}

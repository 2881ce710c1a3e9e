//! Signing in from the console, against the real binary: the session cookie and its attributes
//! over HTTP and HTTPS, the CSRF token every cookie-made write carries, cross-site writes refused
//! even with a good cookie, failed sign-ins bounded, sign-out and expiry, token rotation into the
//! state folder (and back), and the System page: no secret in it, and the store's integrity.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bytes::Bytes;
use common::console::{req, send, Appliance};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

const TOKEN: &str = "the-config-token-of-32-characters";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn sign_in(token: &str) -> Request<Full<Bytes>> {
    req(
        "POST",
        "/api/v1/session",
        &[],
        Some(json!({ "token": token })),
    )
}

fn hook(id: &str) -> Value {
    json!({ "webhook_id": id, "url": "http://127.0.0.1:9/hook" })
}

#[tokio::test]
async fn a_browser_signs_in_with_the_token_and_writes_only_with_its_csrf_token() {
    let app = Appliance::start(&format!("token = \"{TOKEN}\""), false, "").await;
    let a = app.send(req("GET", "/api/v1/session", &[], None)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.body,
        json!({"signed_in": false, "auth": "token", "csrf_token": null, "expires_at": null})
    );
    let a = app.send(req("GET", "/api/v1/webhooks", &[], None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let a = app.send(sign_in("not-the-token-at-all-but-long")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    assert!(a
        .headers
        .get("set-cookie")
        .is_none_or(|c| { !c.to_str().unwrap().contains("Max-Age=43200") }));

    let a = app.send(sign_in(TOKEN)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["signed_in"], true);
    assert_eq!(a.body["auth"], "token");
    assert!(a.body["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let set = a.set_cookie();
    let (cookie, csrf) = (a.cookie(), a.csrf());
    let id = cookie.strip_prefix("facecv_session=").unwrap();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{set}"
    );
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} in {set}");
    }
    assert!(!set.contains("Secure"), "not over plain HTTP: {set}");

    // Reads need only the cookie; the session says who it is again.
    let h: Vec<(&str, &str)> = vec![("cookie", cookie.as_str())];
    let a = app.send(req("GET", "/api/v1/webhooks", &h, None)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = app.send(req("GET", "/api/v1/session", &h, None)).await;
    assert_eq!(
        (a.body["signed_in"].clone(), a.csrf()),
        (json!(true), csrf.clone())
    );

    // Writes need the CSRF token too: none, a wrong one, the right one.
    let a = app
        .send(req("POST", "/api/v1/webhooks", &h, Some(hook("a"))))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let mut wrong = h.clone();
    wrong.push(("x-csrf-token", "0000"));
    let a = app
        .send(req("POST", "/api/v1/webhooks", &wrong, Some(hook("a"))))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let mut good = h.clone();
    good.push(("x-csrf-token", &csrf));
    let a = app
        .send(req("POST", "/api/v1/webhooks", &good, Some(hook("a"))))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // A page of another site cannot write, even though the browser sends the cookie (and somehow
    // the token): Origin and Sec-Fetch-Site still rule.
    let mut evil = good.clone();
    evil.push(("origin", "http://evil.example"));
    let a = app
        .send(req("POST", "/api/v1/webhooks", &evil, Some(hook("b"))))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "foreign_origin")
    );
    let mut cross = good.clone();
    cross.push(("sec-fetch-site", "cross-site"));
    let a = app
        .send(req("DELETE", "/api/v1/webhooks/a", &cross, None))
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "cross_site_request")
    );
    let mut same = good.clone();
    same.extend([
        ("origin", "http://facecv.local:7000"),
        ("sec-fetch-site", "same-origin"),
    ]);
    let a = app
        .send(req("POST", "/api/v1/webhooks", &same, Some(hook("b"))))
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the console's own page: {}",
        a.body
    );

    // Scripts are unchanged: the bearer token, no CSRF header.
    let auth = bearer(TOKEN);
    let a = app
        .send(req(
            "POST",
            "/api/v1/webhooks",
            &[("authorization", &auth)],
            Some(hook("c")),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Console pages need no token (what they serve is helper D's; here: not refused).
    for page in ["/", "/signin", "/system", "/assets/app.js"] {
        let a = app.send(req("GET", page, &[], None)).await;
        assert!(
            a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
            "{page}: {}",
            a.status
        );
    }

    // Sign-out (a change: with the CSRF token) ends the session and clears the cookie.
    let a = app.send(req("DELETE", "/api/v1/session", &h, None)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let a = app
        .send(req("DELETE", "/api/v1/session", &good, None))
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let cleared = a.set_cookie();
    assert!(
        cleared.starts_with("facecv_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let a = app.send(req("GET", "/api/v1/webhooks", &h, None)).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "the session ended");
    let a = app.send(req("GET", "/api/v1/session", &h, None)).await;
    assert_eq!(a.body["signed_in"], false);
}

#[tokio::test]
async fn over_https_the_cookie_is_secure_and_works() {
    let app = Appliance::start(&format!("token = \"{TOKEN}\""), true, "").await;
    let tls = SocketAddr::from(([127, 0, 0, 1], app.tls_port.unwrap()));
    let a = send(tls, None, true, sign_in(TOKEN)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let set = a.set_cookie();
    assert!(set.split("; ").any(|x| x == "Secure"), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|x| x == attr), "{attr} in {set}");
    }
    let cookie = a.cookie();
    let a = send(
        tls,
        None,
        true,
        req("GET", "/api/v1/webhooks", &[("cookie", &cookie)], None),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // The same appliance over plain HTTP: no Secure there.
    let a = app.send(sign_in(TOKEN)).await;
    assert!(!a.set_cookie().contains("Secure"), "{}", a.set_cookie());
}

#[tokio::test]
async fn failed_sign_ins_are_bounded_per_address_and_in_all() {
    let app = Appliance::start(&format!("token = \"{TOKEN}\""), false, "").await;
    let from = |n: u8| Some(IpAddr::from([127, 0, 0, n]));
    let wrong = || sign_in("a-wrong-token-of-enough-length");
    for _ in 0..5 {
        let a = send(app.addr(), from(1), false, wrong()).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::UNAUTHORIZED, "invalid_token")
        );
    }
    for r in [wrong(), sign_in(TOKEN)] {
        let a = send(app.addr(), from(1), false, r).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            "the sixth try, and the right token too, wait"
        );
        let wait: u32 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
    }
    // Scripts with the token are not held back; another address may sign in.
    let auth = bearer(TOKEN);
    let a = send(
        app.addr(),
        from(1),
        false,
        req("GET", "/health", &[("authorization", &auth)], None),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(app.addr(), from(2), false, sign_in(TOKEN)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);

    // Thirty failures in all, from six addresses, close the form for everyone.
    for n in 3..8 {
        for _ in 0..5 {
            let a = send(app.addr(), from(n), false, wrong()).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "from 127.0.0.{n}");
        }
    }
    let a = send(app.addr(), from(9), false, sign_in(TOKEN)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
    assert!(app.log().contains("failed console sign-in"));
}

#[tokio::test]
async fn a_session_ends_after_its_time() {
    let app = Appliance::start(
        &format!("token = \"{TOKEN}\"\nsession_ttl_minutes = 1"),
        false,
        "",
    )
    .await;
    let a = app.send(sign_in(TOKEN)).await;
    assert!(a.set_cookie().contains("Max-Age=60"), "{}", a.set_cookie());
    let cookie = a.cookie();
    let get = || {
        req(
            "GET",
            "/api/v1/webhooks",
            &[("cookie", cookie.as_str())],
            None,
        )
    };
    assert_eq!(app.send(get()).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(app.send(get()).await.status, StatusCode::UNAUTHORIZED);
    let a = app
        .send(req(
            "GET",
            "/api/v1/session",
            &[("cookie", cookie.as_str())],
            None,
        ))
        .await;
    assert_eq!(a.body["signed_in"], false);
}

#[tokio::test]
async fn a_rotated_token_is_written_to_the_state_folder_and_wins_until_the_file_is_deleted() {
    let mut app = Appliance::start(&format!("token = \"{TOKEN}\""), false, "").await;
    assert!(
        app.log()
            .contains("API token: api.token of the config file"),
        "{}",
        app.log()
    );
    let mine = app.send(sign_in(TOKEN)).await;
    let other = app.send(sign_in(TOKEN)).await;
    let (cookie, csrf) = (mine.cookie(), mine.csrf());
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let a = app
        .send(req("POST", "/api/v1/system/token", &h[..1], None))
        .await;
    assert_eq!(a.code(), "csrf_token_invalid", "a change like any other");

    let a = app
        .send(req("POST", "/api/v1/system/token", &h, None))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let new = a.body["token"].as_str().unwrap().to_owned();
    assert_eq!(a.body["in_effect"], "state");
    let file = app.token_file();
    assert_eq!(a.body["written_to"], file.display().to_string());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{new}\n"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(new.len() >= 32 && new != TOKEN);

    let health = |t: &str| req("GET", "/health", &[("authorization", &bearer(t))], None);
    assert_eq!(
        app.send(health(TOKEN)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.send(health(&new)).await.status, StatusCode::OK);
    let get = |c: &str| req("GET", "/api/v1/webhooks", &[("cookie", c)], None);
    assert_eq!(
        app.send(get(&cookie)).await.status,
        StatusCode::OK,
        "the caller's survives"
    );
    assert_eq!(
        app.send(get(&other.cookie())).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.send(sign_in(TOKEN)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let a = app
        .send(req("GET", "/api/v1/system", &[("cookie", &cookie)], None))
        .await;
    assert_eq!(a.body["token_source"], "state");

    // After a restart the file's token is the one.
    app.stop();
    app.restart().await;
    assert_eq!(
        app.send(health(TOKEN)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.send(health(&new)).await.status, StatusCode::OK);
    assert!(
        app.log().contains("the one rotated from the console"),
        "{}",
        app.log()
    );

    // A damaged file stops the start, naming it; no silent fall back to the config's token.
    app.stop();
    std::fs::write(&file, "short\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(&app.config)
        .env("LOG_LEVEL", "ERROR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&file.display().to_string()) && err.contains("16 printable"),
        "{err}"
    );

    // The way back the README gives: delete the file, and the config's token is in force.
    std::fs::remove_file(&file).unwrap();
    app.restart().await;
    assert_eq!(app.send(health(TOKEN)).await.status, StatusCode::OK);
    assert_eq!(
        app.send(health(&new)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_system_page_shows_the_config_in_use_without_a_single_secret() {
    let webhook_secret = "whsec_c2VjcmV0LWtleS1vZi10aGUtd2ViaG9vaw==";
    let rest = format!(
        r#"
[[webhooks]]
webhook_id = "crm"
url = "https://ops:hook-password-9@127.0.0.1:9/in?token=query-secret-7&x=1"
secret = "{webhook_secret}"
headers = {{ Authorization = "Bearer header-secret-3" }}

[mqtt]
enabled = false
host = "127.0.0.1"
username = "door"
password = "mqtt-password-5"
device_id = "door-7"

[[cameras]]
camera_id = "porch"
source = "rtsp://cam:rtsp-password-1@127.0.0.1:554/stream"
autostart = false
"#
    );
    let app = Appliance::start(&format!("token = \"{TOKEN}\""), false, &rest).await;
    let auth = bearer(TOKEN);
    let a = app
        .send(req(
            "GET",
            "/api/v1/system",
            &[("authorization", &auth)],
            None,
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let text = a.body.to_string();
    for secret in [
        TOKEN,
        webhook_secret,
        "hook-password-9",
        "query-secret-7",
        "header-secret-3",
        "mqtt-password-5",
        "rtsp-password-1",
    ] {
        assert!(!text.contains(secret), "{secret} shown in {text}");
    }
    let c = &a.body["config"];
    assert_eq!(c["api"]["token"], "<redacted>");
    assert_eq!(c["mqtt"]["password"], "<redacted>", "set, and hidden");
    assert_eq!(c["webhooks"][0]["secret"], "<redacted>");
    assert_eq!(c["mqtt"]["username"], "door", "what is no secret stays");
    assert_eq!(
        c["cameras"][0]["source"],
        "rtsp://cam:<redacted>@127.0.0.1:554/stream"
    );
    assert_eq!(c["api"]["listen"], format!("127.0.0.1:{}", app.port));

    assert_eq!(a.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(a.body["device_id"], "door-7", "MQTT's id, not a second one");
    assert_eq!(a.body["config_file"], app.config.display().to_string());
    assert_eq!(a.body["token_source"], "config");
    assert_eq!(a.body["https"], Value::Null);
    assert!(a.body["uptime_seconds"].is_u64());
    let store = &a.body["store"];
    assert_eq!(
        store["path"],
        app.dir.path().join("store/facecv.db").display().to_string()
    );
    assert!(store["used_bytes"].as_u64().unwrap() > 0);
    assert!(store["quota_bytes"].as_u64().unwrap() > 0);

    // The store's integrity, on demand, one check at a time.
    let check = || {
        req(
            "POST",
            "/api/v1/system/integrity",
            &[("authorization", &auth)],
            None,
        )
    };
    let a = app.send(check()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["ok"], true);
    assert_eq!(a.body["messages"], json!([]));
    assert!(a.body["checked_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let answers = futures_util::future::join_all((0..4).map(|_| app.send(check()))).await;
    for a in &answers {
        assert!(
            a.status == StatusCode::OK && a.body["ok"] == true
                || a.status == StatusCode::CONFLICT && a.code() == "integrity_check_running",
            "{} {}",
            a.status,
            a.body
        );
    }
}

#[tokio::test]
async fn without_a_token_the_console_on_this_machine_gets_a_session_and_its_writes_are_csrf_checked(
) {
    let app = Appliance::start("", false, "").await;
    let local = |r: Request<Full<Bytes>>| {
        let (mut parts, body) = r.into_parts();
        parts.headers.insert("host", "localhost".parse().unwrap());
        Request::from_parts(parts, body)
    };
    let a = app
        .send(local(req("GET", "/api/v1/session", &[], None)))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        (a.body["signed_in"].clone(), a.body["auth"].clone()),
        (json!(true), json!("loopback"))
    );
    let (cookie, csrf) = (a.cookie(), a.csrf());
    let post =
        |h: &[(&str, &str)], id: &str| local(req("POST", "/api/v1/webhooks", h, Some(hook(id))));
    let a = app.send(post(&[("cookie", &cookie)], "a")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    let a = app
        .send(post(&[("cookie", &cookie), ("x-csrf-token", &csrf)], "a"))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = app.send(post(&[], "b")).await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "a script on this machine, as before: {}",
        a.body
    );
    // A cookie whose session ended is not a script's free pass.
    let gone = "facecv_session=00000000000000000000000000000000";
    let a = app.send(post(&[("cookie", gone)], "c")).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "csrf_token_invalid")
    );
    // The rules of old still hold: a Host that is not loopback is refused, console pages too.
    let a = app.send(req("GET", "/api/v1/session", &[], None)).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::FORBIDDEN, "host_not_allowed")
    );
    let a = app.send(req("GET", "/", &[], None)).await;
    assert_eq!(a.code(), "host_not_allowed");
}

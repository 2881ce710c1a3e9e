//! The configuration in use as JSON with every secret hidden, for the console's System page.
//!
//! A page that shows the configuration is shown on screens, in screenshots and in bug reports, so
//! nothing that grants access may be in it. The secrets of every section, as the types stand:
//! * `api.token`; `webhooks[].secret` (signing keys); `webhooks[].headers` values (receivers'
//!   `Authorization`, API keys); `mqtt.password` (never serialised; shown as redacted when set);
//! * passwords in URLs (`rtsp://user:pass@cam/...` in a camera's `source` or a pipe command,
//!   `https://user:pass@host/hook`), and query parameters named like secrets (`?token=...`).
//!
//! Rather than a list of keys that a new setting would slip past, every key is looked at: one whose
//! name has a word like `token`, `secret`, `password` or `key` is hidden (paths to key files,
//! `tls_key` and `key_file`, are not secrets and stay), and every string is searched for URL
//! passwords. What is hidden becomes `"<redacted>"`, so a reader still sees that it is set.

use serde_json::Value;

use super::Config;

/// What a secret is replaced by.
pub const REDACTED: &str = "<redacted>";

/// Words that make a key (or a URL's query parameter) a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pass",
    "key",
    "apikey",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "sig",
    "signature",
    "psk",
];

/// Keys named like secrets whose values are paths to files, not secrets.
const PATH_KEYS: &[&str] = &["tls_key", "key_file", "tls_cert", "cert_file", "ca_file"];

impl Config {
    /// This configuration as JSON, every secret replaced by `"<redacted>"` (see the module).
    pub fn redacted_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("the configuration serialises");
        redact(&mut v);
        // Never serialised (so never written anywhere by mistake); said to be set when it is.
        if let Some(m) = &self.mqtt {
            if m.password.is_some() {
                v["mqtt"]["password"] = Value::from(REDACTED);
            }
        }
        v
    }
}

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if PATH_KEYS.contains(&lower.as_str()) {
        return false;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| SECRET_WORDS.contains(&w))
}

/// Hides secrets in `v` in place.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, value) in map.iter_mut() {
                // A map of headers keeps its names; their values are credentials as often as not.
                if k == "headers" || is_secret_name(k) {
                    hide_all(value);
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) => {
            if let Some(clean) = redact_url(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// Every leaf value of `v` hidden (a map of headers keeps its names).
fn hide_all(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(hide_all),
        Value::Array(items) => items.iter_mut().for_each(hide_all),
        Value::Null => {}
        other => *other = Value::from(REDACTED),
    }
}

/// `s` with the password of each URL in it and the values of its query parameters named like
/// secrets hidden; `None` when there is nothing to hide. Done on the text, not through a URL
/// parser, so that the rest reads as written (and a URL inside a longer argument is found too).
fn redact_url(s: &str) -> Option<String> {
    if !s.contains("://") && !s.contains('?') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', '?', '#', ' ']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let user = &authority[..authority[..at].find(':').expect("checked")];
                out.push_str(&format!("{user}:{REDACTED}{}", &authority[at..]));
                changed = true;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    let (out, query_changed) = redact_query(&out);
    (changed || query_changed).then_some(out)
}

/// Values of `name=value` pairs after a `?` whose names are secret-like.
fn redact_query(s: &str) -> (String, bool) {
    let Some(q) = s.find('?') else {
        return (s.to_owned(), false);
    };
    let (base, query) = s.split_at(q + 1);
    let (query, fragment) = match query.find(['#', ' ']) {
        Some(i) => query.split_at(i),
        None => (query, ""),
    };
    let mut changed = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => {
                changed = true;
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    (format!("{base}{}{fragment}", pairs.join("&")), changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_in_names_headers_and_urls_are_hidden_and_paths_stay() {
        let mut v = json!({
            "api": {"token": "t0k3n-of-24-characters!!", "tls_key": "/etc/k.pem", "listen": "x"},
            "webhooks": [{"secret": "whsec_abc", "headers": {"Authorization": "Bearer zzz"},
                          "url": "https://bob:hunter2@hook.example/p?token=q1&a=b#f"}],
            "cameras": [{"source": "rtsp://cam:pw123@10.0.0.5:554/s", "spec": {"command":
                ["ffmpeg", "-i", "rtsp://u:pw456@h/x", "-f", "rawvideo"]}}],
            "mqtt": {"password": null, "tls": {"key_file": "/k"}, "api_key": "k1"},
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in [
            "t0k3n",
            "whsec_abc",
            "zzz",
            "hunter2",
            "q1",
            "pw123",
            "pw456",
            "k1",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(v["api"]["tls_key"], "/etc/k.pem");
        assert_eq!(v["mqtt"]["tls"]["key_file"], "/k");
        assert_eq!(v["mqtt"]["password"], Value::Null, "unset stays unset");
        assert_eq!(
            v["webhooks"][0]["url"],
            "https://bob:<redacted>@hook.example/p?token=<redacted>&a=b#f"
        );
        assert_eq!(
            v["cameras"][0]["source"],
            "rtsp://cam:<redacted>@10.0.0.5:554/s"
        );
        assert_eq!(v["webhooks"][0]["headers"]["Authorization"], REDACTED);
        assert_eq!(v["api"]["listen"], "x");
    }

    #[test]
    fn the_shipped_configs_have_nothing_to_hide_and_nothing_is_hidden() {
        for text in [
            super::super::EMBEDDED_DEFAULT,
            include_str!("../../systemd/facecv.toml"),
        ] {
            let v = Config::from_toml(text).unwrap().redacted_json();
            assert!(!v.to_string().contains(REDACTED), "{v:#}");
            assert!(v["api"]["listen"].is_string() && v["storage"]["dir"].is_string());
        }
    }

    #[test]
    fn plain_strings_are_left_alone() {
        for s in [
            "http://host:8080/hook",
            "synthetic",
            "/dev/video0",
            "rtsp://cam/s",
        ] {
            assert_eq!(redact_url(s), None, "{s}");
        }
    }
}

//! A webhook as the store keeps it and every part reads it: its id, its settings (FaceCV's field
//! names, ranges and defaults) and its Standard Webhooks signing key.
//!
//! These live with the store rather than with `delivery/`, because the store persists them and
//! hands them out, the API validates them, and the delivery workers only read them: each of those
//! imports downward to here, and nothing here imports back up.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::camera::CameraId;
use crate::config::check::{check_name, check_range, ConfigError};
use crate::events::{EventFilter, EventType};

/// A webhook's name: used in URLs, logs and metric labels, so kept to a safe alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(String);

impl WebhookId {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        check_name("webhook_id", s)?;
        Ok(WebhookId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One webhook, with FaceCV's field names, ranges and defaults (`facecv-api-notes.md`). The
/// `#[schema]` ranges are the ones [`WebhookConfig::validate`] enforces, so that a client built
/// from the OpenAPI document is refused nothing the document allows.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"webhook_id": "main_recognition",
    "url": "http://127.0.0.1:8080/webhook/face-recognition",
    "headers": {"Authorization": "Bearer your-token"}, "timeout": 30, "retry_count": 3,
    "batch_size": 10, "batch_timeout": 1.0, "enabled": true,
    "event_types": ["face_recognized", "stranger_alert"]}))]
pub struct WebhookConfig {
    /// The webhook's name, in URLs and logs.
    #[schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$", example = "main_recognition")]
    pub webhook_id: String,
    /// Where batches are POSTed: an http or https URL.
    #[schema(
        pattern = r"^https?://[^\s/?#]+",
        max_length = 2048,
        example = "http://127.0.0.1:8080/webhook/face-recognition"
    )]
    pub url: String,
    /// Sent with every delivery; the appliance's own (`Content-Type`, `webhook-*`) cannot be set.
    #[serde(default)]
    #[schema(example = json!({"Authorization": "Bearer your-token"}))]
    pub headers: BTreeMap<String, String>,
    /// Seconds to wait for the receiver's answer, 1 to 300.
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 300, default = 30, example = 30)]
    pub timeout: f64,
    /// Retries after the first attempt, 0 to 10 (FaceCV counted attempts; 0 meant none at all).
    #[serde(default = "default_retry_count")]
    #[schema(minimum = 0, maximum = 10, default = 3, example = 3)]
    pub retry_count: u32,
    /// The first back-off in seconds, 1 to 60; each retry doubles it, with jitter.
    #[serde(default = "default_retry_delay")]
    #[schema(minimum = 1, maximum = 60, default = 1, example = 1)]
    pub retry_delay: f64,
    /// Events per request, 1 to 100.
    #[serde(default = "default_batch_size")]
    #[schema(minimum = 1, maximum = 100, default = 10, example = 10)]
    pub batch_size: u32,
    /// Seconds to wait for a batch to fill, 0.1 to 60.
    #[serde(default = "default_batch_timeout")]
    #[schema(minimum = 0.1, maximum = 60, default = 1.0, example = 1.0)]
    pub batch_timeout: f64,
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub enabled: bool,
    /// Absent means every type.
    #[serde(default)]
    #[schema(schema_with = event_types_schema)]
    pub event_types: Option<Vec<EventType>>,
    /// Only events of these cameras; absent means every camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = camera_ids_schema)]
    pub camera_ids: Option<Vec<String>>,
    /// Standard Webhooks signing secret, `whsec_` + base64 key. Generated when absent. Answers
    /// never carry it, but the one that created the webhook (and a rotation's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^whsec_(?:[A-Za-z0-9+/]{4}){7,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$",
        example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )]
    pub secret: Option<String>,
}

/// `event_types` as the document shows it: the six names, or null for every type.
fn event_types_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let names = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(EventType::ALL.iter().map(|t| t.as_str())));
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(names)
        .unique_items(true)
        .description(Some(
            "The event types this webhook receives; null or absent: every type.",
        ))
        .examples([serde_json::json!(["face_recognized", "stranger_alert"])])
        .build()
}

/// `camera_ids` as the document shows it: camera ids, or null for every camera.
fn camera_ids_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let ids = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[A-Za-z0-9_.\-]{1,64}$"));
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(ids)
        .description(Some(
            "Only events of these cameras; null or absent: every camera.",
        ))
        .examples([serde_json::json!(["entrance"])])
        .build()
}

fn default_timeout() -> f64 {
    30.0
}
fn default_retry_count() -> u32 {
    3
}
fn default_retry_delay() -> f64 {
    1.0
}
fn default_batch_size() -> u32 {
    10
}
fn default_batch_timeout() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

/// Headers the appliance sets on every delivery; a configured copy would be sent twice.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

impl WebhookConfig {
    /// A webhook with FaceCV's defaults for everything but its id and URL.
    pub fn new(webhook_id: &str, url: &str) -> Self {
        WebhookConfig {
            webhook_id: webhook_id.into(),
            url: url.into(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            retry_count: default_retry_count(),
            retry_delay: default_retry_delay(),
            batch_size: default_batch_size(),
            batch_timeout: default_batch_timeout(),
            enabled: true,
            event_types: None,
            camera_ids: None,
            secret: None,
        }
    }

    /// Checks every field against FaceCV's ranges; the error names the first field that is out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        WebhookId::parse(&self.webhook_id)?;
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError::invalid(
                    "url",
                    format!("must be an http or https URL, got {:?}", self.url),
                ))
            }
        }
        for (name, value) in &self.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::invalid(
                    format!("headers.{name}"),
                    "is set by the appliance itself and cannot be configured",
                ));
            }
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(ConfigError::invalid(
                    format!("headers.{name}"),
                    "must be a valid HTTP header name and value",
                ));
            }
        }
        // A list names each type once (the document says `uniqueItems`): a repeat is a slip in
        // the client's code, better told than stored.
        if let Some(types) = &self.event_types {
            if let Some(t) = types
                .iter()
                .enumerate()
                .find_map(|(i, t)| types[..i].contains(t).then_some(t))
            {
                return Err(ConfigError::invalid(
                    "event_types",
                    format!("{} is listed twice", t.as_str()),
                ));
            }
        }
        for c in self.camera_ids.iter().flatten() {
            CameraId::parse(c).map_err(|e| match e {
                ConfigError::Invalid { message, .. } => ConfigError::invalid("camera_ids", message),
                other => other,
            })?;
        }
        check_range("timeout", self.timeout, 1.0, 300.0, " s")?;
        check_range("retry_count", self.retry_count.into(), 0.0, 10.0, "")?;
        check_range("retry_delay", self.retry_delay, 1.0, 60.0, " s")?;
        check_range("batch_size", self.batch_size.into(), 1.0, 100.0, "")?;
        check_range("batch_timeout", self.batch_timeout, 0.1, 60.0, " s")?;
        if let Some(secret) = &self.secret {
            SigningKey::parse(secret).map_err(|e| ConfigError::invalid("secret", e.to_string()))?;
        }
        Ok(())
    }

    pub fn id(&self) -> WebhookId {
        WebhookId(self.webhook_id.clone())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs_f64(self.retry_delay)
    }
    pub fn batch_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.batch_timeout)
    }

    /// The events this webhook receives.
    pub fn filter(&self) -> EventFilter<'_> {
        EventFilter {
            types: self.event_types.as_deref(),
            cameras: self.camera_ids.as_deref(),
        }
    }
}

const PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("must start with \"whsec_\" followed by a base64 key")]
    Prefix,
    #[error("the part after \"whsec_\" is not valid base64")]
    Base64,
    #[error("the key must be between 24 and 64 bytes, got {0}")]
    Length(usize),
}

/// A webhook's HMAC key, decoded once from its `whsec_` form. FaceCV sent unsigned requests; every
/// request now carries a Standard Webhooks signature (<https://www.standardwebhooks.com>), which
/// the receivers' stock libraries (Python `standardwebhooks`, Svix, ...) verify unchanged.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = B64.decode(b64).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(SigningKey(key))
    }

    /// A new random 32-byte secret in its `whsec_` form.
    pub fn generate_secret() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        format!("{PREFIX}{}", B64.encode(key))
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_keep_to_a_safe_alphabet() {
        assert!(WebhookId::parse("main_recognition").is_ok());
        assert!(WebhookId::parse("a/b").is_err());
        assert!(WebhookId::parse("").is_err());
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The test vector from the Standard Webhooks specification's reference libraries.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_documented_schema_has_the_ranges_validate_enforces_and_a_valid_example() {
        use utoipa::PartialSchema;
        let doc = serde_json::to_value(WebhookConfig::schema()).unwrap();
        let p = &doc["properties"];
        for (field, lo, hi) in [
            ("timeout", 1.0, 300.0),
            ("retry_count", 0.0, 10.0),
            ("retry_delay", 1.0, 60.0),
            ("batch_size", 1.0, 100.0),
            ("batch_timeout", 0.1, 60.0),
        ] {
            assert_eq!(p[field]["minimum"].as_f64(), Some(lo), "{field}: {doc}");
            assert_eq!(p[field]["maximum"].as_f64(), Some(hi), "{field}: {doc}");
        }
        let names = p["event_types"]["items"]["enum"].as_array().unwrap();
        assert_eq!(names.len(), EventType::ALL.len(), "{doc}");
        assert_eq!(
            doc["required"],
            serde_json::json!(["webhook_id", "url"]),
            "{doc}"
        );
        // The example Schemathesis starts from is one the appliance takes.
        let example: WebhookConfig = serde_json::from_value(doc["example"].clone()).unwrap();
        example.validate().unwrap();
        let secret = p["secret"]["example"].as_str().unwrap();
        SigningKey::parse(secret).unwrap();
    }

    #[test]
    fn refuses_an_event_type_listed_twice() {
        let mut w: WebhookConfig = serde_json::from_value(serde_json::json!({
            "webhook_id": "w", "url": "http://127.0.0.1:9/",
            "event_types": ["face_detected", "stranger_alert", "face_detected"]
        }))
        .unwrap();
        let e = w.validate().unwrap_err().to_string();
        assert!(
            e.contains("event_types") && e.contains("face_detected is listed twice"),
            "{e}"
        );
        w.event_types = Some(vec![EventType::FaceDetected, EventType::StrangerAlert]);
        w.validate().unwrap();
    }

    #[test]
    fn refuses_malformed_secrets() {
        assert_eq!(SigningKey::parse("abc").unwrap_err(), SecretError::Prefix);
        assert_eq!(
            SigningKey::parse("whsec_!!!").unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            SigningKey::parse("whsec_AAAA").unwrap_err(),
            SecretError::Length(3)
        );
        assert!(SigningKey::parse(&SigningKey::generate_secret()).is_ok());
    }
}

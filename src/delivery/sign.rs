//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! FaceCV sent unsigned requests, so a receiver could not tell our events from anyone's. Each webhook
//! now has a secret `whsec_<base64 key>`; every request carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, which the receivers' stock
//! libraries (Python `standardwebhooks`, Svix, ...) verify unchanged.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::{HeaderName, HeaderValue};
use rand::RngCore;
use sha2::Sha256;

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

/// A webhook's HMAC key, decoded once from its `whsec_` form.
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

/// The three Standard Webhooks headers for one message, signed now: `webhook-id`,
/// `webhook-timestamp` and `webhook-signature`. The one place they are built, for the webhook
/// workers and the API's test send alike.
pub fn headers(key: &SigningKey, msg_id: &str, body: &[u8]) -> [(HeaderName, HeaderValue); 3] {
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    headers_at(key, msg_id, timestamp, body)
}

fn headers_at(
    key: &SigningKey,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(HeaderName, HeaderValue); 3] {
    let signature = key.sign(msg_id, timestamp, body);
    let value = |s: String| {
        HeaderValue::try_from(s).expect("message ids, digits and base64 are valid header values")
    };
    [
        (
            HeaderName::from_static("webhook-id"),
            value(msg_id.to_owned()),
        ),
        (
            HeaderName::from_static("webhook-timestamp"),
            value(timestamp.to_string()),
        ),
        (
            HeaderName::from_static("webhook-signature"),
            value(signature),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_carry_the_id_the_timestamp_and_the_signature_of_both() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let h = headers_at(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        let get = |name: &str| {
            h.iter()
                .find(|(n, _)| n == name)
                .unwrap()
                .1
                .to_str()
                .unwrap()
        };
        assert_eq!(get("webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(get("webhook-timestamp"), "1614265330");
        assert_eq!(
            get("webhook-signature"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
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

//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! FaceCV sent unsigned requests, so a receiver could not tell our events from anyone's. Each webhook
//! now has a secret `whsec_<base64 key>`; every request carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, which the receivers' stock
//! libraries (Python `standardwebhooks`, Svix, ...) verify unchanged.

use http::header::{HeaderName, HeaderValue};

use crate::store::webhook::SigningKey;

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
}

//! Standard Webhooks signatures (<https://www.standardwebhooks.com>).
//!
//! FaceCV sent unsigned requests, so a receiver could not tell our events from anyone's. Each webhook
//! now has a secret `whsec_<base64 key>`; every request carries `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, which the receivers' stock
//! libraries (Python `standardwebhooks`, Svix, ...) verify unchanged.

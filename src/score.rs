//! How scores, confidences and thresholds go out on the wire.
//!
//! The models compute in `f32`; JSON numbers are read as `f64`. Widening `0.55f32` gives
//! `0.550000011920929`, which is not what anyone wrote in a config file, and a similarity of
//! `1.0000001` (rounding in a dot product) is not a confidence. Every number of that kind is sent
//! as the shortest decimal that reads back as the same `f32` (what `{:?}` prints for it), and
//! confidences are clamped to `[0, 1]`.

use std::fmt::Write;

/// `x` as the `f64` closest to its shortest decimal form: `0.55f32` becomes `0.55`.
/// Non-finite values become 0 (JSON has no NaN), which callers never produce on purpose.
pub fn as_written(x: f32) -> f64 {
    if !x.is_finite() {
        return 0.0;
    }
    // An f32's shortest form is at most ~16 characters ("-1.1754944e-38"): no heap needed.
    let mut buf = heapless::String::<32>::new();
    // `{:?}`, unlike `{}`, switches to an exponent for tiny and huge values.
    write!(buf, "{x:?}").expect("an f32's shortest form fits in 32 bytes");
    buf.parse().expect("Rust reads back what it prints")
}

/// A confidence or similarity: clamped to `[0, 1]`, then [`as_written`].
pub fn confidence(x: f32) -> f64 {
    as_written(x.clamp(0.0, 1.0))
}

/// `#[serde(serialize_with = "crate::score::ser_as_written")]` for an `f32` field.
pub fn ser_as_written<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(as_written(*x))
}

/// `#[serde(serialize_with = "crate::score::ser_confidence")]` for an `f32` confidence field.
pub fn ser_confidence<S: serde::Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(confidence(*x))
}

/// For an `Option<f32>` threshold field (with `skip_serializing_if = "Option::is_none"`).
pub fn ser_opt_as_written<S: serde::Serializer>(x: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        Some(v) => s.serialize_some(&as_written(*v)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_written() {
        assert_eq!(serde_json::json!(as_written(0.55)).to_string(), "0.55");
        assert_eq!(
            serde_json::json!(0.55f32 as f64).to_string(),
            "0.550000011920929"
        );
        assert_eq!(as_written(1.0), 1.0);
        assert_eq!(as_written(f32::NAN), 0.0);
        assert_eq!(as_written(-0.25), -0.25);
        assert_eq!(as_written(1.1754944e-38) as f32, 1.1754944e-38);
    }

    #[test]
    fn confidences_stay_in_range() {
        assert_eq!(confidence(1.000_000_1), 1.0);
        assert_eq!(confidence(-0.2), 0.0);
        assert_eq!(serde_json::json!(confidence(0.7312)).to_string(), "0.7312");
    }
}

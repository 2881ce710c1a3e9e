//! One pipeline per camera: capture -> detect -> align -> embed -> match -> tracker -> policy ->
//! events. Everything after `match` is here; the stages before it live in `camera` and `vision`.

pub mod policy;
pub mod tracker;

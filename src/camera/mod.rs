//! Cameras: where frames come from (v4l2, a command's pipe, files, synthetic), and the latest-frame
//! slot that keeps capture from ever blocking inference.
//!
//! [`control`] is the small face the rest of the appliance sees of them: which cameras exist, whether
//! each runs, and a way to start and stop one (the MQTT bridge's commands and the GPIO inputs use it).

pub mod control;

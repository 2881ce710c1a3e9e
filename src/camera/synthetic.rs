//! A test pattern that moves, so that soak tests and a camera-less appliance exercise the whole
//! pipeline (capture, slot, detector, events) with frames that change but hold no faces.

use super::{CameraError, Frame, Pacer, Source};
use crate::shutdown::Shutdown;

/// Diagonal colour gradients that scroll one pixel a frame, with a white bar sweeping across.
pub struct SyntheticSource {
    width: u32,
    height: u32,
    fps: f32,
    seq: u64,
    pacer: Pacer,
    /// Cuts the pacing sleep short.
    stop: Shutdown,
}

impl SyntheticSource {
    pub fn new(width: u32, height: u32, fps: f32, stop: Shutdown) -> Self {
        SyntheticSource {
            width,
            height,
            fps,
            seq: 0,
            pacer: Pacer::new(fps),
            stop,
        }
    }

    /// Draws frame number `t`: a pure function of (x, y, t), so a test can predict any pixel.
    pub fn draw(t: u64, frame: &mut Frame) {
        let width = frame.width as usize;
        let bar = (t as usize * 4) % width.max(1);
        let t8 = t as usize;
        for (y, row) in frame.rgb.chunks_exact_mut(width * 3).enumerate() {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                if x.abs_diff(bar) < 4 {
                    px.fill(255);
                } else {
                    px[0] = (x + t8) as u8;
                    px[1] = (y + 2 * t8) as u8;
                    px[2] = ((x + y) / 2) as u8;
                }
            }
        }
    }
}

impl Source for SyntheticSource {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CameraError> {
        self.pacer.wait(&self.stop)?;
        frame.resize(self.width, self.height);
        Self::draw(self.seq, frame);
        self.seq += 1;
        frame.stamp(self.seq);
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "synthetic {}x{} @ {} fps",
            self.width, self.height, self.fps
        )
    }
}

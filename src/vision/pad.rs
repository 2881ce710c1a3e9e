//! Padding a still photo onto a grey canvas, for the detector's second look at a tight crop.
//!
//! BlazeFace was trained on faces with surroundings and misses one that fills the whole picture
//! (an ID photo, a cropped upload); [`FaceEngine`](super::FaceEngine) retries such a photo once,
//! centred on a larger canvas, and maps what it finds back onto the photo.

use super::decode;

/// An image centred on a larger mid-grey canvas.
#[derive(Debug, Clone)]
pub struct Padded {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Where the original's top-left corner is on the canvas.
    pub offset: (u32, u32),
    /// Original pixels per canvas pixel: above 1 when the image was reduced to keep the canvas
    /// within [`MAX_CANVAS_PIXELS`].
    pub scale: f32,
}

/// The largest padding canvas, in pixels (12 MiB of RGB): the padded retry is for tight crops,
/// which the detector sees at 192x192 anyway, so a larger image is reduced before it is padded
/// rather than padded into a canvas of up to 16 times its size.
pub const MAX_CANVAS_PIXELS: u64 = 1 << 22;

impl Padded {
    /// Moves a box and its keypoints found on the canvas back onto the original picture.
    pub fn to_original(&self, bbox: &mut [f32; 4], keypoints: &mut [[f32; 2]]) {
        let (dx, dy, s) = (self.offset.0 as f32, self.offset.1 as f32, self.scale);
        *bbox = [
            (bbox[0] - dx) * s,
            (bbox[1] - dy) * s,
            (bbox[2] - dx) * s,
            (bbox[3] - dy) * s,
        ];
        for k in keypoints {
            k[0] = (k[0] - dx) * s;
            k[1] = (k[1] - dy) * s;
        }
    }
}

/// Centre `rgb` on a canvas `factor` times its size: BlazeFace misses faces that fill the whole
/// picture (it was trained on faces with surroundings), so still-image callers with tight crops
/// pad first. The canvas never exceeds [`MAX_CANVAS_PIXELS`]: a larger image is first reduced by
/// a whole factor. Map coordinates found on the canvas back with [`Padded::to_original`].
pub fn pad_image(rgb: &[u8], width: u32, height: u32, factor: f32) -> Padded {
    let factor = if factor.is_finite() {
        factor.clamp(1.0, 4.0)
    } else {
        1.0
    };
    let canvas = |k: u32| {
        let side = |v: u32| ((v.div_ceil(k) as f32 * factor).round() as u64).max(1);
        side(width) * side(height)
    };
    let mut k = 1;
    while canvas(k) > MAX_CANVAS_PIXELS {
        k += 1;
    }
    let reduced;
    let (rgb, width, height) = if k > 1 {
        reduced = decode::reduce_rgb(rgb, width, height, k);
        (&reduced.0[..], reduced.1, reduced.2)
    } else {
        (rgb, width, height)
    };
    let (w, h) = (width as usize, height as usize);
    let pw = ((w as f32 * factor).round() as usize).max(w);
    let ph = ((h as f32 * factor).round() as usize).max(h);
    let (ox, oy) = ((pw - w) / 2, (ph - h) / 2);
    let mut out = vec![128u8; pw * ph * 3];
    for (y, src) in rgb.chunks_exact(w * 3).take(h).enumerate() {
        let dst = ((y + oy) * pw + ox) * 3;
        out[dst..dst + w * 3].copy_from_slice(src);
    }
    Padded {
        rgb: out,
        width: pw as u32,
        height: ph as u32,
        offset: (ox as u32, oy as u32),
        scale: k as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_padding_canvas_is_bounded_whatever_the_shape() {
        for (w, h, f) in [
            (2047, 2047, 4.0),
            (8192, 128, 4.0),
            (1, 8192, 4.0),
            (300, 200, 2.0),
        ] {
            let rgb = vec![7u8; w as usize * h as usize * 3];
            let p = pad_image(&rgb, w, h, f);
            assert!(
                u64::from(p.width) * u64::from(p.height) <= MAX_CANVAS_PIXELS,
                "{w}x{h}"
            );
            assert_eq!(p.rgb.len(), p.width as usize * p.height as usize * 3);
            // The original's corners come back where they were.
            let (ox, oy) = (p.offset.0 as f32, p.offset.1 as f32);
            let mut bbox = [ox, oy, ox + (w as f32 / p.scale), oy + (h as f32 / p.scale)];
            p.to_original(&mut bbox, &mut []);
            assert_eq!(bbox, [0.0, 0.0, w as f32, h as f32], "{w}x{h}");
        }
        let small = pad_image(&[1u8; 300 * 200 * 3], 300, 200, 2.0);
        assert_eq!((small.width, small.height, small.scale), (600, 400, 1.0));
    }
}

//! Face boxes and name labels drawn into an RGB24 picture, for the live view.
//!
//! Everything here draws in place and allocates nothing: the live view draws into one buffer it
//! reuses for every frame. Text uses the public-domain 8x8 bitmap font of `font8x8` (ASCII and
//! Latin-1, enough for most names; other characters show as `?`), scaled up by whole pixels.

use font8x8::legacy::{BASIC_LEGACY, LATIN_LEGACY};

/// A face recognised as someone enrolled.
pub const RECOGNISED: [u8; 3] = [32, 200, 64];
/// A face embedded and matched to nobody: a stranger.
pub const STRANGER: [u8; 3] = [230, 36, 36];
/// A face detected but too small to embed, so neither recognised nor a stranger yet.
pub const DETECTED: [u8; 3] = [255, 170, 0];

/// A packed RGB24 picture to draw on.
pub struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: i32,
    height: i32,
}

impl<'a> Canvas<'a> {
    /// `rgb` must hold `width * height * 3` bytes.
    pub fn new(rgb: &'a mut [u8], width: u32, height: u32) -> Self {
        debug_assert_eq!(rgb.len(), width as usize * height as usize * 3);
        Canvas {
            rgb,
            width: width as i32,
            height: height as i32,
        }
    }

    /// How many pixels a font pixel and a line are for this picture: labels stay readable on a
    /// phone showing a 1080p frame, and lines survive JPEG's chroma subsampling.
    pub fn scale(&self) -> i32 {
        (self.height / 240).clamp(1, 4)
    }

    /// Fills `[x1, x2) x [y1, y2)`, clipped to the picture.
    pub fn fill(&mut self, x1: i32, y1: i32, x2: i32, y2: i32, color: [u8; 3]) {
        let (x1, x2) = (x1.clamp(0, self.width), x2.clamp(0, self.width));
        let (y1, y2) = (y1.clamp(0, self.height), y2.clamp(0, self.height));
        if x1 >= x2 {
            return;
        }
        for y in y1..y2 {
            let row = (y * self.width) as usize * 3;
            let line = &mut self.rgb[row + x1 as usize * 3..row + x2 as usize * 3];
            for px in line.chunks_exact_mut(3) {
                px.copy_from_slice(&color);
            }
        }
    }

    /// A box around `[x1, y1, x2, y2]`, its lines `thickness` wide and drawn outside the box so
    /// that the face itself stays unpainted.
    pub fn outline(&mut self, bbox: [i32; 4], thickness: i32, color: [u8; 3]) {
        let [x1, y1, x2, y2] = bbox;
        let t = thickness;
        self.fill(x1 - t, y1 - t, x2 + t, y1, color);
        self.fill(x1 - t, y2, x2 + t, y2 + t, color);
        self.fill(x1 - t, y1, x1, y2, color);
        self.fill(x2, y1, x2 + t, y2, color);
    }

    /// A label on a filled band of `color` just above the box (inside its top when the box
    /// touches the picture's top), as wide as its text, cut at the picture's right edge.
    pub fn label(
        &mut self,
        bbox: [i32; 4],
        text: impl Iterator<Item = char> + Clone,
        color: [u8; 3],
    ) {
        let s = self.scale();
        let t = s;
        let pad = s;
        let glyph = 8 * s;
        let chars = text.clone().count() as i32;
        let band_h = glyph + 2 * pad;
        let x = (bbox[0] - t).max(0);
        let y = if bbox[1] - t - band_h >= 0 {
            bbox[1] - t - band_h
        } else {
            bbox[1].max(0)
        };
        let w = (chars * glyph + 2 * pad).min(self.width - x);
        self.fill(x, y, x + w, y + band_h, color);
        let ink = if luma(color) > 140 {
            [0, 0, 0]
        } else {
            [255, 255, 255]
        };
        let mut cx = x + pad;
        for c in text {
            if cx + glyph > x + w {
                break;
            }
            self.glyph(cx, y + pad, s, c, ink);
            cx += glyph;
        }
    }

    fn glyph(&mut self, x: i32, y: i32, scale: i32, c: char, ink: [u8; 3]) {
        let rows = glyph_of(c);
        for (dy, bits) in rows.iter().enumerate() {
            for dx in 0..8 {
                if bits & (1 << dx) != 0 {
                    let (px, py) = (x + dx * scale, y + dy as i32 * scale);
                    self.fill(px, py, px + scale, py + scale, ink);
                }
            }
        }
    }
}

fn luma(c: [u8; 3]) -> u32 {
    (77 * c[0] as u32 + 150 * c[1] as u32 + 29 * c[2] as u32) / 256
}

/// The font's rows for `c` (bit 0 is the leftmost pixel); `?` for what the font lacks.
fn glyph_of(c: char) -> [u8; 8] {
    match c as u32 {
        code @ 0x20..=0x7E => BASIC_LEGACY[code as usize],
        code @ 0xA0..=0xFF => LATIN_LEGACY[code as usize - 0xA0],
        _ => BASIC_LEGACY[b'?' as usize],
    }
}

/// The digits of a percentage (0 to 100) and a `%`, without allocating.
pub fn percent(value: f32) -> impl Iterator<Item = char> + Clone {
    let p = (value * 100.0).round().clamp(0.0, 100.0) as u32;
    let digits = [p / 100, p / 10 % 10, p % 10];
    let skip = if p >= 100 {
        0
    } else if p >= 10 {
        1
    } else {
        2
    };
    digits
        .into_iter()
        .skip(skip)
        .map(|d| char::from(b'0' + d as u8))
        .chain(std::iter::once('%'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_is_drawn_outside_the_face_and_clipped_at_the_edges() {
        let mut rgb = vec![0u8; 100 * 60 * 3];
        let mut c = Canvas::new(&mut rgb, 100, 60);
        c.outline([10, 10, 40, 40], 2, STRANGER);
        c.outline([90, 50, 120, 80], 3, RECOGNISED);
        let at = |x: usize, y: usize| {
            let i = (y * 100 + x) * 3;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        assert_eq!(at(8, 25), STRANGER);
        assert_eq!(at(41, 25), STRANGER);
        assert_eq!(at(25, 9), STRANGER);
        assert_eq!(at(25, 25), [0, 0, 0], "the face is left alone");
        assert_eq!(at(10, 25), [0, 0, 0]);
        assert_eq!(at(88, 55), RECOGNISED);
    }

    #[test]
    fn a_label_sits_above_the_box_with_ink_that_contrasts() {
        let mut rgb = vec![0u8; 200 * 100 * 3];
        let mut c = Canvas::new(&mut rgb, 200, 100);
        c.label([50, 60, 90, 90], "Ana 87%".chars(), DETECTED);
        let (mut band, mut ink) = (0, 0);
        for y in 0..60 {
            for x in 0..200 {
                let i = (y * 200 + x) * 3;
                match [rgb[i], rgb[i + 1], rgb[i + 2]] {
                    DETECTED => band += 1,
                    [0, 0, 0] if (49..=49 + 7 * 8 + 2).contains(&x) && y >= 49 => ink += 1,
                    _ => {}
                }
            }
        }
        assert!(band > 300 && ink > 50, "band {band}, ink {ink}");
    }

    #[test]
    fn percentages_and_missing_glyphs() {
        assert_eq!(percent(0.873).collect::<String>(), "87%");
        assert_eq!(percent(1.0).collect::<String>(), "100%");
        assert_eq!(percent(0.04).collect::<String>(), "4%");
        assert_eq!(glyph_of('€'), glyph_of('?'));
        assert_ne!(glyph_of('é'), glyph_of('?'));
    }
}

//! Image bombs and damaged photos, built in memory: what a hostile or careless client uploads.
//! Shared by the abuse suite, the decoder's property tests and the image bench.
#![allow(dead_code)]

/// A PNG of `width` x `height` black pixels (`color_type` 0 grey, 2 RGB, 8 bits), compressed as
/// a real bomb is: a few MB of deflate runs stand for hundreds of MB of pixels.
pub fn png_zeros(width: u32, height: u32, color_type: u8) -> Vec<u8> {
    let bpp: u64 = if color_type == 2 { 3 } else { 1 };
    let raw = u64::from(height) * (1 + u64::from(width) * bpp);
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, color_type, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_zeros(raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A PNG whose IHDR says `width` x `height`, with a few real rows behind it (a forged header).
pub fn png_forged_header(width: u32, height: u32) -> Vec<u8> {
    let mut b = png_zeros(1, 1, 0);
    b[16..20].copy_from_slice(&width.to_be_bytes());
    b[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&b[12..29]);
    b[29..33].copy_from_slice(&crc.to_be_bytes());
    b
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// LSB-first bit packing, as deflate wants.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        let rev = code.reverse_bits() >> (32 - len);
        self.put(u64::from(rev), len);
    }
}

/// A zlib stream of `n` zero bytes: one fixed-Huffman block of a literal and runs of 258.
fn zlib_zeros(n: u64) -> Vec<u8> {
    let mut bits = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // fixed Huffman
    if n > 0 {
        bits.code(0x30, 8); // literal 0
        let rest = n - 1;
        // Length 258 (symbol 285, 8 bits 0xC5) at distance 1 (code 0, 5 bits): 13 bits together.
        let run = u64::from((0xC5u32.reverse_bits() >> 24) & 0xFF);
        for _ in 0..rest / 258 {
            bits.put(run, 13);
        }
        for _ in 0..rest % 258 {
            bits.code(0x30, 8);
        }
    }
    bits.code(0, 7); // end of block
    if bits.n > 0 {
        bits.put(0, 8 - bits.n);
    }
    let mut out = bits.out;
    let (a, b) = (1u64, n % 65521);
    out.extend((((b << 16) | a) as u32).to_be_bytes());
    out
}

/// A JPEG of an RGB image (quality 90, 4:2:0 as phones write them).
pub fn jpeg(rgb: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(rgb, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// A PNG of an RGB image.
pub fn png(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::Fastest);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(rgb).unwrap();
    w.finish().unwrap();
    out
}

/// `jpeg` with its frame header (SOF) saying `width` x `height`; its image data is unchanged.
pub fn jpeg_forged_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut b = jpeg.to_vec();
    let mut i = 2;
    while i + 4 <= b.len() {
        assert_eq!(b[i], 0xFF, "a marker at {i}");
        let marker = b[i + 1];
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        if matches!(marker, 0xC0..=0xC2) {
            b[i + 5..i + 7].copy_from_slice(&height.to_be_bytes());
            b[i + 7..i + 9].copy_from_slice(&width.to_be_bytes());
            return b;
        }
        i += 2 + len;
    }
    panic!("no frame header");
}

/// The first `num / den` of a file, as an upload cut short leaves it.
pub fn cut(bytes: &[u8], num: usize, den: usize) -> Vec<u8> {
    bytes[..bytes.len() * num / den].to_vec()
}

/// A phone-sized photo: `rgb` enlarged (nearest neighbour) to fill the width of a grey
/// `width` x `height` canvas, centred, as a portrait photo of one person.
pub fn phone_sized(rgb: &[u8], w: u32, h: u32, width: u32, height: u32) -> Vec<u8> {
    let scale = (width / w).min(height / h).max(1);
    let (sw, sh) = (w * scale, h * scale);
    let (ox, oy) = ((width - sw) / 2, (height - sh) / 2);
    let mut out = vec![128u8; width as usize * height as usize * 3];
    for y in 0..sh {
        let src_row = &rgb[((y / scale) * w * 3) as usize..][..(w * 3) as usize];
        let dst = (((y + oy) * width + ox) * 3) as usize;
        let row = &mut out[dst..dst + (sw * 3) as usize];
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let s = (x as u32 / scale * 3) as usize;
            px.copy_from_slice(&src_row[s..s + 3]);
        }
    }
    out
}

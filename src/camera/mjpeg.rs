//! Splitting a stream of concatenated JPEGs (MJPEG files, `rpicam-vid --codec mjpeg` on a pipe)
//! into single JPEGs without decoding them.

use std::io::{self, BufRead};

/// Largest JPEG accepted from a stream: far above any camera's frame, low enough that garbage
/// input cannot make us buffer the whole disk.
const MAX_JPEG_BYTES: usize = 32 << 20;

/// Copies the next whole JPEG (SOI to EOI) from a stream of concatenated JPEGs into `out`.
///
/// Walks the markers instead of searching for FF D9, because an EXIF thumbnail inside APP1 has an
/// FF D9 of its own; segments are skipped by their length and only entropy-coded data is scanned.
/// Returns false at a clean end of stream; bytes before an SOI are skipped.
pub(crate) fn read_jpeg(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    if !skip_to_soi(r)? {
        return Ok(false);
    }
    out.extend([0xFF, 0xD8]);
    let mut pending = None;
    loop {
        let marker = match pending.take() {
            Some(m) => m,
            None => read_marker(r)?,
        };
        out.extend([0xFF, marker]);
        match marker {
            0xD9 => return Ok(true),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let mut len = [0u8; 2];
        r.read_exact(&mut len)?;
        let len = usize::from(u16::from_be_bytes(len));
        if len < 2 || out.len() + len > MAX_JPEG_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad JPEG segment length",
            ));
        }
        out.extend((len as u16).to_be_bytes());
        let start = out.len();
        out.resize(start + len - 2, 0);
        r.read_exact(&mut out[start..])?;
        if marker == 0xDA {
            pending = Some(copy_entropy_data(r, out)?);
        }
    }
}

fn read_byte(r: &mut impl BufRead) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

/// Reads an FF-prefixed marker (fill FFs allowed) and returns its code.
fn read_marker(r: &mut impl BufRead) -> io::Result<u8> {
    if read_byte(r)? != 0xFF {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "JPEG marker expected",
        ));
    }
    loop {
        match read_byte(r)? {
            0xFF => continue,
            m => return Ok(m),
        }
    }
}

fn skip_to_soi(r: &mut impl BufRead) -> io::Result<bool> {
    let mut last = 0u8;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(false);
        }
        for (i, &b) in buf.iter().enumerate() {
            if last == 0xFF && b == 0xD8 {
                r.consume(i + 1);
                return Ok(true);
            }
            last = b;
        }
        let n = buf.len();
        r.consume(n);
    }
}

/// Copies entropy-coded data (with its stuffed `FF 00` and restart markers) into `out` and returns
/// the first real marker after it, consumed but not copied.
fn copy_entropy_data(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<u8> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let Some(ff) = buf.iter().position(|&b| b == 0xFF) else {
            out.extend_from_slice(buf);
            let n = buf.len();
            r.consume(n);
            check_size(out)?;
            continue;
        };
        out.extend_from_slice(&buf[..ff]);
        r.consume(ff + 1);
        let mut next = read_byte(r)?;
        while next == 0xFF {
            next = read_byte(r)?;
        }
        if next == 0x00 || (0xD0..=0xD7).contains(&next) {
            out.extend([0xFF, next]);
            check_size(out)?;
        } else {
            return Ok(next);
        }
    }
}

fn check_size(out: &[u8]) -> io::Result<()> {
    if out.len() > MAX_JPEG_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "JPEG larger than 32 MiB",
        ));
    }
    Ok(())
}

//! Recorded frames: y4m and MJPEG files, single images and folders of them.
//!
//! Files let a test, a benchmark or an installer replay the same scene through the whole pipeline.
//! They are paced at the configured rate (0 runs them as fast as they decode, for tests and
//! benchmarks) and can loop. Each frame keeps its own size, so a folder of differently sized
//! photos works as is.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::frame::{decode_jpeg, grey_to_rgb, planar_to_rgb, yuv_to_rgb, Planes, YuvRange};
use super::mjpeg::read_jpeg;
use super::{CameraError, Frame, Pacer, Source};
use crate::shutdown::Shutdown;

/// Longest y4m header or FRAME line; real ones are under 100 bytes.
const MAX_Y4M_LINE: usize = 1024;

/// Frames from a file or folder, paced and optionally looped.
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
    fps: f32,
    looped: bool,
    pacer: Pacer,
    seq: u64,
    frames_this_pass: u64,
    /// Cuts the pacing sleep short.
    stop: Shutdown,
}

enum Reader {
    Y4m(Y4m),
    /// Its JPEGs are handed on undecoded: an unpaced file gives far more frames than are analysed.
    Mjpeg {
        file: BufReader<File>,
    },
    Images {
        paths: Vec<PathBuf>,
        next: usize,
        data: Vec<u8>,
        scratch: Vec<u8>,
    },
}

impl FileSource {
    /// Opens `path`: a folder of images, or a file recognised by its extension or its first bytes.
    /// Cancelling `stop` makes a paced `next_frame` return [`CameraError::Stopped`] at once.
    pub fn open(path: &Path, fps: f32, looped: bool, stop: Shutdown) -> Result<Self, CameraError> {
        let reader = if path.is_dir() {
            Reader::images(list_images(path)?)
        } else {
            match sniff(path)? {
                Kind::Y4m => Reader::Y4m(Y4m::open(path)?),
                Kind::Mjpeg => Reader::Mjpeg {
                    file: open_file(path)?,
                },
                Kind::Image => Reader::images(vec![path.to_path_buf()]),
            }
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            reader,
            fps,
            looped,
            pacer: Pacer::new(fps),
            seq: 0,
            frames_this_pass: 0,
            stop,
        })
    }

    fn rewind(&mut self) -> Result<(), CameraError> {
        let read_err = |source| CameraError::Read {
            path: self.path.clone(),
            source,
        };
        match &mut self.reader {
            Reader::Y4m(y) => y.rewind().map_err(read_err),
            Reader::Mjpeg { file, .. } => file.seek(SeekFrom::Start(0)).map(drop).map_err(read_err),
            Reader::Images { next, .. } => {
                *next = 0;
                Ok(())
            }
        }
    }
}

impl Source for FileSource {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CameraError> {
        self.pacer.wait(&self.stop)?;
        loop {
            if self.reader.read(&self.path, frame)? {
                break;
            }
            if !self.looped {
                return Err(CameraError::Ended);
            }
            if self.frames_this_pass == 0 {
                return Err(CameraError::Format {
                    path: self.path.clone(),
                    message: "holds no frames".into(),
                });
            }
            self.frames_this_pass = 0;
            self.rewind()?;
        }
        self.frames_this_pass += 1;
        self.seq += 1;
        frame.stamp(self.seq);
        Ok(())
    }

    fn describe(&self) -> String {
        let what = match &self.reader {
            Reader::Y4m(y) => format!("y4m {}x{} C{}", y.width, y.height, y.chroma.name()),
            Reader::Mjpeg { .. } => "mjpeg".to_string(),
            Reader::Images { paths, .. } => format!("{} image(s)", paths.len()),
        };
        let pace = if self.fps > 0.0 {
            format!("{} fps", self.fps)
        } else {
            "unpaced".into()
        };
        let looped = if self.looped { ", looped" } else { "" };
        format!("file {} ({what}) {pace}{looped}", self.path.display())
    }
}

impl Reader {
    fn images(paths: Vec<PathBuf>) -> Self {
        Reader::Images {
            paths,
            next: 0,
            data: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Reads the next frame into `frame`; false at the end of the file or folder.
    fn read(&mut self, path: &Path, frame: &mut Frame) -> Result<bool, CameraError> {
        match self {
            Reader::Y4m(y) => y.read(path, frame),
            Reader::Mjpeg { file } => {
                match read_jpeg(file, frame.set_encoded(super::PixelFormat::Mjpeg, 0, 0, 0)) {
                    Ok(found) => Ok(found),
                    // A recording cut short (power loss, a killed recorder) ends at its last whole frame.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        tracing::warn!(path = %path.display(), "MJPEG file ends mid-frame");
                        Ok(false)
                    }
                    Err(e) => Err(CameraError::Format {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    }),
                }
            }
            Reader::Images {
                paths,
                next,
                data,
                scratch,
            } => {
                let Some(image) = paths.get(*next) else {
                    return Ok(false);
                };
                *next += 1;
                read_image(image, data, scratch, frame)?;
                Ok(true)
            }
        }
    }
}

enum Kind {
    Y4m,
    Mjpeg,
    Image,
}

/// Extension first (what the user meant), then the first bytes (what the file is).
fn sniff(path: &Path) -> Result<Kind, CameraError> {
    let ext = extension(path);
    match ext.as_str() {
        "y4m" => return Ok(Kind::Y4m),
        "mjpeg" | "mjpg" => return Ok(Kind::Mjpeg),
        "jpg" | "jpeg" | "png" => return Ok(Kind::Image),
        _ => {}
    }
    let mut head = [0u8; 10];
    let n = open_file(path)?
        .read(&mut head)
        .map_err(|source| CameraError::Read {
            path: path.into(),
            source,
        })?;
    match &head[..n] {
        h if h.starts_with(b"YUV4MPEG2") => Ok(Kind::Y4m),
        [0xFF, 0xD8, ..] => Ok(Kind::Mjpeg),
        _ => Err(CameraError::Format {
            path: path.into(),
            message:
                "is not a y4m or MJPEG file, an image (.jpg, .jpeg, .png) or a folder of images"
                    .into(),
        }),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn open_file(path: &Path) -> Result<BufReader<File>, CameraError> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|source| CameraError::Read {
            path: path.into(),
            source,
        })
}

/// The folder's .jpg/.jpeg/.png files, sorted by name so `frame_0010.jpg` follows `frame_0009.jpg`.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>, CameraError> {
    let read_err = |source| CameraError::Read {
        path: dir.into(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.is_file() && matches!(extension(&path).as_str(), "jpg" | "jpeg" | "png") {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(CameraError::Format {
            path: dir.into(),
            message: "holds no .jpg, .jpeg or .png images".into(),
        });
    }
    paths.sort();
    Ok(paths)
}

fn read_image(
    path: &Path,
    data: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    frame: &mut Frame,
) -> Result<(), CameraError> {
    data.clear();
    File::open(path)
        .and_then(|mut f| f.read_to_end(data))
        .map_err(|source| CameraError::Read {
            path: path.into(),
            source,
        })?;
    let decoded = if data.starts_with(&[0xFF, 0xD8]) {
        decode_jpeg(data, frame).map_err(|e| e.to_string())
    } else {
        decode_png(data, scratch, frame)
    };
    decoded.map_err(|message| CameraError::Format {
        path: path.into(),
        message,
    })
}

/// Decodes a PNG of any colour type and depth into RGB24 (alpha dropped, 16-bit cut to 8).
fn decode_png(data: &[u8], scratch: &mut Vec<u8>, frame: &mut Frame) -> Result<(), String> {
    let mut decoder = png::Decoder::new(io::Cursor::new(data));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("bad PNG: {e}"))?;
    super::frame::check_frame_size(reader.info().width, reader.info().height)?;
    scratch.resize(reader.output_buffer_size().ok_or("PNG too large")?, 0);
    let info = reader
        .next_frame(scratch)
        .map_err(|e| format!("bad PNG: {e}"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let dst = frame.resize(info.width, info.height);
    for (row, out) in dst.chunks_exact_mut(w * 3).take(h).enumerate() {
        let line = &scratch[row * info.line_size..][..w * channels];
        match channels {
            1 => grey_to_rgb(line, out),
            3 => out.copy_from_slice(line),
            _ => {
                for (px, src) in out.chunks_exact_mut(3).zip(line.chunks_exact(channels)) {
                    if channels == 2 {
                        px.fill(src[0]);
                    } else {
                        px.copy_from_slice(&src[..3]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Chroma layout of a y4m stream (its `C` header tag).
#[derive(Clone, Copy, Debug)]
enum Chroma {
    C420,
    C422,
    C444,
    C444Alpha,
    Mono,
}

impl Chroma {
    fn parse(tag: &str) -> Option<Self> {
        Some(match tag {
            "420" | "420jpeg" | "420mpeg2" | "420paldv" => Chroma::C420,
            "422" => Chroma::C422,
            "444" => Chroma::C444,
            "444alpha" => Chroma::C444Alpha,
            "mono" => Chroma::Mono,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Chroma::C420 => "420",
            Chroma::C422 => "422",
            Chroma::C444 => "444",
            Chroma::C444Alpha => "444alpha",
            Chroma::Mono => "mono",
        }
    }

    /// Chroma (width, height) shifts: 1 halves, 0 keeps.
    fn shifts(self) -> (u32, u32) {
        match self {
            Chroma::C420 => (1, 1),
            Chroma::C422 => (1, 0),
            Chroma::C444 | Chroma::C444Alpha | Chroma::Mono => (0, 0),
        }
    }
}

/// A YUV4MPEG2 stream: one text header, then `FRAME` lines each followed by the planes. Generic
/// over the reader so that the parser can be fuzzed on bytes in memory.
struct Y4m<R = BufReader<File>> {
    file: R,
    width: usize,
    height: usize,
    chroma: Chroma,
    range: YuvRange,
    data_start: u64,
    line: Vec<u8>,
    raw: Vec<u8>,
}

impl Y4m {
    fn open(path: &Path) -> Result<Self, CameraError> {
        Y4m::from_reader(open_file(path)?, path)
    }
}

impl<R: BufRead + Seek> Y4m<R> {
    /// Reads the header; `path` only names the stream in errors.
    fn from_reader(mut file: R, path: &Path) -> Result<Self, CameraError> {
        let bad = |message: String| CameraError::Format {
            path: path.into(),
            message,
        };
        let mut line = Vec::new();
        read_line(&mut file, &mut line).map_err(|e| bad(format!("bad y4m header: {e}")))?;
        let header = String::from_utf8_lossy(&line).trim_end().to_string();
        let mut tags = header.split(' ');
        if tags.next() != Some("YUV4MPEG2") {
            return Err(bad("is not a y4m file (no YUV4MPEG2 header)".into()));
        }
        let (mut width, mut height, mut chroma, mut range) =
            (0, 0, Chroma::C420, YuvRange::Limited);
        for tag in tags.filter(|t| !t.is_empty()) {
            // By char, not byte: a header is untrusted and may start a tag with a multi-byte char.
            let key_len = tag.chars().next().map_or(0, char::len_utf8);
            let (key, value) = tag.split_at(key_len);
            match key {
                "W" => width = value.parse().map_err(|_| bad(format!("bad y4m width {value}")))?,
                "H" => height = value.parse().map_err(|_| bad(format!("bad y4m height {value}")))?,
                "C" => {
                    chroma = Chroma::parse(value).ok_or_else(|| {
                        bad(format!("y4m colour space C{value} is not supported (8-bit 420, 422, 444, mono are)"))
                    })?
                }
                "X" if value.eq_ignore_ascii_case("COLORRANGE=FULL") => range = YuvRange::Full,
                _ => {}
            }
        }
        if !(1..=8192).contains(&width) || !(1..=8192).contains(&height) {
            return Err(bad(format!(
                "y4m size {width}x{height} is not 1..=8192 a side"
            )));
        }
        Ok(Y4m {
            file,
            width,
            height,
            chroma,
            range,
            data_start: line.len() as u64,
            line,
            raw: Vec::new(),
        })
    }

    fn frame_len(&self) -> usize {
        let (sx, sy) = self.chroma.shifts();
        let luma = self.width * self.height;
        let chroma = (self.width + (1 << sx) - 1) >> sx;
        let chroma = chroma * ((self.height + (1 << sy) - 1) >> sy);
        match self.chroma {
            Chroma::Mono => luma,
            Chroma::C444Alpha => 4 * luma,
            _ => luma + 2 * chroma,
        }
    }

    fn rewind(&mut self) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.data_start)).map(drop)
    }

    fn read(&mut self, path: &Path, frame: &mut Frame) -> Result<bool, CameraError> {
        let bad = |message: String| CameraError::Format {
            path: path.into(),
            message,
        };
        match read_line(&mut self.file, &mut self.line) {
            Ok(0) => return Ok(false),
            Ok(_) if self.line.starts_with(b"FRAME") => {}
            Ok(_) => return Err(bad("y4m frame does not start with FRAME".into())),
            Err(e) => return Err(bad(format!("bad y4m frame header: {e}"))),
        }
        // Grown as the bytes arrive, not sized from the header: a 20-byte upload that claims
        // 8192x8192 4:4:4 with alpha must not allocate 256 MiB before it is found to be short.
        let len = self.frame_len();
        self.raw.clear();
        match (&mut self.file).take(len as u64).read_to_end(&mut self.raw) {
            Ok(n) if n == len => {}
            Ok(_) => {
                tracing::warn!(path = %path.display(), "y4m file ends mid-frame");
                return Ok(false);
            }
            Err(source) => {
                return Err(CameraError::Read {
                    path: path.into(),
                    source,
                })
            }
        }
        self.convert(frame);
        Ok(true)
    }

    fn convert(&self, frame: &mut Frame) {
        let (w, h) = (self.width, self.height);
        let dst = frame.resize(w as u32, h as u32);
        let (y, rest) = self.raw.split_at(w * h);
        if let Chroma::Mono = self.chroma {
            for (px, luma) in dst.chunks_exact_mut(3).zip(y) {
                px.fill(yuv_to_rgb(*luma, 128, 128, self.range)[0]);
            }
            return;
        }
        let (sx, sy) = self.chroma.shifts();
        let cw = (w + (1 << sx) - 1) >> sx;
        let ch = (h + (1 << sy) - 1) >> sy;
        let (u, rest) = rest.split_at(cw * ch);
        let planes = Planes {
            y,
            u,
            v: &rest[..cw * ch],
            cw,
            shift_x: sx,
            shift_y: sy,
        };
        planar_to_rgb(&planes, w, h, self.range, dst);
    }
}

/// Reads every frame of a y4m stream held in memory, as a camera or a video enrolment reads a
/// file, then once more after a rewind; at most `max_frames` a pass. The fuzz target's entry.
pub(crate) fn y4m_frames(bytes: &[u8], max_frames: usize) -> Result<usize, CameraError> {
    let path = Path::new("<memory>");
    let mut y4m = Y4m::from_reader(io::Cursor::new(bytes), path)?;
    let mut frame = Frame::new();
    let mut frames = 0;
    for _pass in 0..2 {
        let mut n = 0;
        while n < max_frames && y4m.read(path, &mut frame)? {
            n += 1;
        }
        frames = frames.max(n);
        y4m.rewind().map_err(|source| CameraError::Read {
            path: path.into(),
            source,
        })?;
    }
    Ok(frames)
}

/// Reads one `\n`-terminated line (kept in `line`, newline included); 0 at the end of the file.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    line.clear();
    let n = r
        .by_ref()
        .take(MAX_Y4M_LINE as u64)
        .read_until(b'\n', line)?;
    if n > 0 && line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or cut short",
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_frame(header: &str, planes: &[(u8, usize)]) -> Frame {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.y4m");
        let mut data = format!("{header}\nFRAME\n").into_bytes();
        for &(value, len) in planes {
            data.extend(std::iter::repeat_n(value, len));
        }
        std::fs::write(&path, data).unwrap();
        let mut frame = Frame::new();
        FileSource::open(&path, 0.0, false, Shutdown::new())
            .unwrap()
            .next_frame(&mut frame)
            .unwrap();
        frame
    }

    #[test]
    fn full_range_and_greyscale_y4m_keep_their_levels() {
        let red = first_frame(
            "YUV4MPEG2 W16 H16 F25:1 C444 XCOLORRANGE=FULL",
            &[(76, 256), (85, 256), (255, 256)],
        );
        let px = red.pixel(3, 3);
        assert!(px[0] >= 253 && px[1] <= 2 && px[2] <= 2, "{px:?}");

        let grey = first_frame("YUV4MPEG2 W16 H16 F25:1 Cmono", &[(16, 128), (235, 128)]);
        assert_eq!((grey.pixel(0, 0), grey.pixel(0, 15)), ([0; 3], [255; 3]));
    }
}

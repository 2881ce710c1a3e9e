//! Network cameras: an `rtsp://`, `rtsps://`, `http://` or `https://` URL, read through `ffmpeg`
//! with an argv the appliance builds itself.
//!
//! A URL is anyone's text when it comes over the API, and `ffmpeg` reads far more than cameras:
//! files (`file:`), lists of files (`concat:`), parts of files (`subfile:`), other programs'
//! output (`pipe:`), and playlists that point at any of them. So a URL is parsed once into a
//! [`StreamUrl`] (one of the four schemes, a host, no spaces or control characters, nothing that
//! could be read as an option), and [`ffmpeg_command`] takes only that type: it passes
//! `-protocol_whitelist` for the URL's scheme, so that neither a redirect nor a playlist the camera
//! (or whoever answers in its place) serves can make `ffmpeg` open a local file.

use std::fmt;

use super::CameraError;

/// The longest URL accepted; camera URLs are short, and ffmpeg's own limit is a few KiB.
const MAX_URL_LEN: usize = 2048;

/// A network camera's URL, checked; see the module comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamUrl(url::Url);

impl StreamUrl {
    /// The schemes a network camera may use.
    pub const SCHEMES: [&'static str; 4] = ["rtsp", "rtsps", "http", "https"];

    pub fn parse(raw: &str) -> Result<StreamUrl, CameraError> {
        let bad = |why: &str| CameraError::invalid("source", format!("{why}, got {raw:?}"));
        if raw.len() > MAX_URL_LEN {
            return Err(CameraError::invalid(
                "source",
                format!("a camera URL is at most {MAX_URL_LEN} characters"),
            ));
        }
        // The URL parser would quietly drop or encode these; a URL that needs them is not one a
        // camera gave, and a space or newline is how text turns into extra arguments elsewhere.
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "a camera URL must not contain spaces or control characters",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if !Self::SCHEMES.contains(&url.scheme()) {
            return Err(bad(
                "a network camera must be an rtsp://, rtsps://, http:// or https:// URL",
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("a camera URL must name a host"));
        }
        Ok(StreamUrl(url))
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The `ffmpeg` protocols this URL may use: the scheme's own and what it runs on, never
    /// `file`, `pipe`, `concat`, `subfile` or `data`. HTTP may redirect between http and https.
    fn protocols(&self) -> &'static str {
        match self.scheme() {
            "rtsp" => "rtsp,rtp,tcp,udp",
            "rtsps" => "rtsp,rtsps,rtp,tcp,udp,tls",
            _ => "http,https,tcp,tls",
        }
    }
}

impl fmt::Display for StreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `ffmpeg` command that turns a network stream into raw RGB24 frames of a fixed size, so the
/// pipe source never has to learn the stream's resolution. TCP for RTSP: UDP loses packets over
/// Wi-Fi and smears whole frames. The URL is one argument, right after `-i`, and nowhere else.
///
/// The stream keeps its aspect ratio: it is scaled to fit inside `width`x`height` and centred on
/// black bars (`force_original_aspect_ratio=decrease,pad`). Squeezing a 16:9 camera into 4:3
/// made faces a quarter narrower than the detector and the embedder were trained on. Fitting
/// gives a face the same pixels as learning the stream's size first (`ffprobe`) and scaling to
/// the largest frame of its shape inside the box would, since the detector letterboxes its input
/// anyway; it needs no second process and no wait before the first frame, and the frame size
/// stays the one configured even when the camera changes its resolution mid-stream. Boxes are in
/// the padded frame's pixels, which is what the live view and the snapshots show.
pub fn ffmpeg_command(url: &StreamUrl, width: u32, height: u32, fps: f32) -> Vec<String> {
    let mut cmd: Vec<String> = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
        .map(String::from)
        .into();
    cmd.extend(["-protocol_whitelist".into(), url.protocols().into()]);
    if url.scheme().starts_with("rtsp") {
        cmd.extend(["-rtsp_transport", "tcp"].map(String::from));
    }
    cmd.extend(["-i".into(), url.as_str().into(), "-an".into()]);
    cmd.extend([
        "-vf".into(),
        format!(
            "scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2"
        ),
    ]);
    if fps > 0.0 {
        cmd.extend(["-r".into(), format!("{fps}")]);
    }
    cmd.extend(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"].map(String::from));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_camera_urls_become_an_argv_and_only_after_dash_i() {
        for bad in [
            "file:/etc/passwd",
            "concat:/etc/passwd|/etc/shadow",
            "subfile,,start,0,end,0,,:/etc/passwd",
            "pipe:0",
            "-i rtsp://cam/x",
            "rtsp://cam/x -f lavfi",
            "rtsp://cam/x\n-f",
            " rtsp://cam/x",
            "rtsp:///etc/passwd",
            "ftp://cam/x",
            "rtsp://",
        ] {
            assert!(StreamUrl::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let url = StreamUrl::parse("rtsp://user:pw@cam.local:554/stream1").unwrap();
        let cmd = ffmpeg_command(&url, 640, 480, 10.0);
        let at = cmd.iter().position(|a| a == "-i").unwrap();
        assert_eq!(cmd[at + 1], "rtsp://user:pw@cam.local:554/stream1");
        assert_eq!(cmd.iter().filter(|a| a.contains("cam.local")).count(), 1);
        let wl = cmd.iter().position(|a| a == "-protocol_whitelist").unwrap();
        assert!(wl < at && !cmd[wl + 1].contains("file"), "{cmd:?}");
        let vf = cmd.iter().position(|a| a == "-vf").unwrap();
        assert_eq!(
            cmd[vf + 1],
            "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2",
            "the stream keeps its shape"
        );
        let http = ffmpeg_command(
            &StreamUrl::parse("https://cam/v.mjpg").unwrap(),
            64,
            48,
            0.0,
        );
        assert!(!http.contains(&"-rtsp_transport".to_string()));
        assert!(!http.contains(&"-r".to_string()));
    }
}

//! What hyper reads and writes on a connection: the socket, with a note of when the client last
//! sent something (for `server`'s idle shedding), and hyper's own empty-bodied error answers
//! turned into the API's JSON error.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::server::{Conn, MAX_HEAD};

/// A connection's socket as hyper sees it: notes when the client last sent something, and turns
/// hyper's own empty-bodied error answers into the API's JSON error (see [`json_for_hyper_error`]).
pub(super) struct Wire<S> {
    inner: S,
    conn: Option<Arc<Conn>>,
    /// Bytes to send before anything else: the JSON answer that replaced hyper's.
    pending: Vec<u8>,
}

impl<S> Wire<S> {
    pub(super) fn new(inner: S, conn: Option<Arc<Conn>>) -> Self {
        Wire {
            inner,
            conn,
            pending: Vec::new(),
        }
    }
}

impl<S: AsyncWrite + Unpin> Wire<S> {
    /// Writes out `pending`; ready once it is all gone.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Wire<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut me.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            if let Some(c) = &me.conn {
                c.touch();
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Wire<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        std::task::ready!(me.poll_pending(cx))?;
        match find_hyper_error(buf) {
            Some((0, status)) => {
                tracing::debug!(status, "a request hyper could not parse; answered in JSON");
                me.pending = json_for_hyper_error(status);
                Poll::Ready(Ok(buf.len()))
            }
            // What comes before it first (the end of an earlier response).
            Some((at, _)) => Pin::new(&mut me.inner).poll_write(cx, &buf[..at]),
            None => Pin::new(&mut me.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        std::task::ready!(me.poll_pending(cx))?;
        Pin::new(&mut me.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        std::task::ready!(me.poll_pending(cx))?;
        Pin::new(&mut me.inner).poll_shutdown(cx)
    }
}

/// Where in `buf` hyper's automatic error answer starts, and its status. hyper writes it when it
/// cannot parse a request head (`proto/h1/role.rs`, `Server::on_error`): 400, 414 or 431, a head
/// with `content-length: 0` and no `content-type`, as the last bytes before it closes. Every
/// answer of the API has a `content-type`, and none has a bare CRLF-framed head inside its body
/// (JSON escapes line breaks), so the match cannot take a response of ours for it.
fn find_hyper_error(buf: &[u8]) -> Option<(usize, u16)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let at = buf.windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = std::str::from_utf8(&buf[at..buf.len() - 4]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    if !matches!(status, 400 | 414 | 431) {
        return None;
    }
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        if name == "content-type" {
            return None;
        }
        if name == "content-length" {
            empty = value.trim() == "0";
        }
    }
    empty.then_some((at, status))
}

/// The API's JSON error in place of hyper's answer with `status`.
fn json_for_hyper_error(status: u16) -> Vec<u8> {
    let (reason, code, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            format!("the request head is larger than {MAX_HEAD} bytes or has too many headers"),
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "the request's URI is too long".to_owned(),
        ),
        _ => (
            "Bad Request",
            "bad_request",
            "the request is not valid HTTP/1.1 (a malformed request line, URI or header)"
                .to_owned(),
        ),
    };
    let body =
        serde_json::json!({ "error": { "code": code, "message": message }, "detail": message })
            .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 17:00:00 GMT\r\n\r\n";

    #[test]
    fn hypers_own_answer_is_found_and_only_it() {
        assert_eq!(find_hyper_error(HYPER_400), Some((0, 400)));
        let earlier = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let mut after = earlier.to_vec();
        after.extend_from_slice(HYPER_400);
        assert_eq!(find_hyper_error(&after), Some((earlier.len(), 400)));
        // The API's own answers always name their content type.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(find_hyper_error(ours), None);
        assert_eq!(
            find_hyper_error(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"),
            None
        );
        assert_eq!(find_hyper_error(b"data: {}\n\n"), None);
    }

    #[test]
    fn the_replacement_is_the_json_error() {
        let text = String::from_utf8(json_for_hyper_error(431)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert_eq!(v["detail"], v["error"]["message"]);
    }
}

// A camera's live view: its MJPEG stream read with fetch() rather than an <img> pointed at it,
// so that a refusal (too many viewers, a stopped camera) is told in words, and leaving the page
// closes the stream for certain (an abort), freeing the viewer's place on the appliance.

import { stream, explain } from './api.js';
import { h } from './ui.js';

const CRLF2 = new Uint8Array([13, 10, 13, 10]);

function indexOf(haystack, needle, from) {
  const first = needle[0];
  const last = haystack.length - needle.length;
  for (let i = from; i <= last; i++) {
    if (haystack[i] !== first) continue;
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Splits a multipart/x-mixed-replace body into its parts' bodies (JPEG frames), by each part's
 * Content-Length when it gives one, else by the next boundary. Calls `onFrame(bytes)`.
 */
async function readParts(response, onFrame) {
  const type = response.headers.get('content-type') || '';
  const m = /boundary="?([^";]+)"?/i.exec(type);
  const delimiter = new TextEncoder().encode('--' + (m ? m[1] : 'frame'));
  const reader = response.body.getReader();
  const text = new TextDecoder();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = concat(buf, value);
    for (;;) {
      const at = indexOf(buf, delimiter, 0);
      if (at < 0) break;
      const headersEnd = indexOf(buf, CRLF2, at);
      if (headersEnd < 0) break;
      const headers = text.decode(buf.subarray(at, headersEnd));
      const start = headersEnd + 4;
      const length = /content-length:\s*(\d+)/i.exec(headers);
      let end;
      if (length) {
        end = start + Number(length[1]);
        if (buf.length < end) break;
      } else {
        const next = indexOf(buf, delimiter, start);
        if (next < 0) break;
        end = next;
        while (end > start && (buf[end - 1] === 10 || buf[end - 1] === 13)) end--;
      }
      if (end > start) onFrame(buf.slice(start, end));
      buf = buf.slice(end);
    }
    if (buf.length > 8 * 1024 * 1024) buf = new Uint8Array(0); // not a stream we understand
  }
}

/**
 * Opens the live view of camera `id` into `area`; returns `close()`. The area shows the picture,
 * or why there is none.
 */
export function openLive(id, area, onClosed) {
  const controller = new AbortController();
  const img = h('img', { class: 'live', alt: `Live view of ${id}, with face boxes and names` });
  const status = h('p', { class: 'muted small', role: 'status' }, 'Connecting…');
  area.replaceChildren(status, img);
  let shown = null;
  let closed = false;

  function show(jpeg) {
    const url = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
    const previous = shown;
    shown = url;
    img.src = url;
    if (previous) URL.revokeObjectURL(previous);
    if (status.textContent) status.textContent = '';
  }

  function close() {
    if (closed) return;
    closed = true;
    controller.abort();
    if (shown) URL.revokeObjectURL(shown);
    shown = null;
  }

  (async () => {
    try {
      const response = await stream(`/api/v1/cameras/${encodeURIComponent(id)}/live.mjpg`, controller.signal);
      await readParts(response, show);
      if (!closed) area.replaceChildren(h('p', { class: 'notice' }, 'The live view ended (the camera stopped).'));
    } catch (e) {
      if (e.name === 'AbortError' || closed) return;
      area.replaceChildren(h('p', { class: 'error-box', role: 'alert' }, explain(e)));
    }
    close();
    if (onClosed) onClosed();
  })();

  return close;
}

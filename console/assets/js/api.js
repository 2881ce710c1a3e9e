// The console's one way to the API: JSON in and out, the session's CSRF token on every write,
// and every error turned into an ApiError that explain() can put into a sentence.

/** An answer of the API that was not a success, from its `{"error": {code, message, field}}`. */
export class ApiError extends Error {
  constructor(status, code, message, field = null, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }
}

let current = null;

/**
 * The session: `{signed_in, auth: "token"|"loopback", csrf_token, expires_at}`, asked once and
 * kept (pass `true` to ask again). An appliance without the session endpoint (404) is one whose
 * API answers loopback without a token: signed in, no CSRF token needed.
 */
export function session(refresh = false) {
  if (!current || refresh) {
    current = fetchSession().catch((e) => {
      current = null;
      throw e;
    });
  }
  return current;
}

async function fetchSession() {
  const r = await send('GET', '/api/v1/session');
  if (r.status === 404) {
    return { signed_in: true, auth: 'loopback', csrf_token: null, expires_at: null };
  }
  if (r.status === 401) {
    return { signed_in: false, auth: 'token', csrf_token: null, expires_at: null };
  }
  if (!r.ok) throw await toError(r);
  return r.json();
}

/** Signs in with the API token; the appliance answers with the session and sets its cookie. */
export async function signIn(token) {
  const r = await send('POST', '/api/v1/session', { token });
  if (!r.ok) throw await toError(r);
  current = Promise.resolve(await r.json());
  return current;
}

/** Ends the session (the cookie is cleared by the answer). */
export async function signOut() {
  const s = await session().catch(() => null);
  const r = await send('DELETE', '/api/v1/session', undefined, s && s.csrf_token);
  current = null;
  if (!r.ok && r.status !== 404 && r.status !== 401) throw await toError(r);
}

/**
 * Calls the API: `body` is sent as JSON, or as is when it is a FormData (multipart). Returns the
 * parsed JSON, or null for an empty answer. A 401 sends the browser to the sign-in page.
 * `options.signal` aborts the request (an AbortError is thrown, not an ApiError).
 */
export async function api(method, path, body, options = {}) {
  const write = !['GET', 'HEAD', 'OPTIONS'].includes(method);
  let s = write ? await session() : null;
  let r = await send(method, path, body, s && s.csrf_token, options.signal);
  if (r.status === 403 && write) {
    // A session renewed elsewhere (another tab signed in again): fetch its token, try once more.
    const err = await toError(r.clone());
    if (err.code === 'csrf_token_invalid') {
      s = await session(true);
      r = await send(method, path, body, s && s.csrf_token, options.signal);
    }
  }
  if (r.status === 401) {
    current = null;
    const here = location.pathname + location.search;
    if (location.pathname !== '/signin') {
      location.assign('/signin?next=' + encodeURIComponent(here));
    }
  }
  if (!r.ok) throw await toError(r);
  if (r.status === 204) return null;
  const text = await r.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Opens a streaming GET (the live view's MJPEG): resolves to the Response once the answer is a
 * success, throws the ApiError otherwise. Abort with `signal` to close it.
 */
export async function stream(path, signal) {
  const s = await session().catch(() => null);
  const r = await send('GET', path, undefined, s && s.csrf_token, signal);
  if (r.status === 401) location.assign('/signin?next=' + encodeURIComponent(location.pathname));
  if (!r.ok) throw await toError(r);
  return r;
}

async function send(method, path, body, csrf, signal) {
  const headers = { Accept: 'application/json' };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (csrf) headers['X-CSRF-Token'] = csrf;
  try {
    return await fetch(path, { method, headers, body: payload, credentials: 'same-origin', signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the appliance did not answer');
  }
}

async function toError(r) {
  let code = 'http_' + r.status;
  let message = r.statusText || 'HTTP ' + r.status;
  let field = null;
  try {
    const body = await r.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
      field = body.error.field || null;
    }
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  const retry = Number(r.headers.get('Retry-After')) || null;
  return new ApiError(r.status, code, message, field, retry);
}

const SENTENCES = {
  network: 'The appliance did not answer. Check that it is running and that this device can reach it.',
  unauthorized: 'You are not signed in, or your session has ended. Sign in with the API token.',
  invalid_token: 'That token is not right. It is the api.token of the appliance (or the one the console last rotated).',
  csrf_token_invalid: 'The page is out of date with your session. Reload it and try again.',
  forbidden: 'This appliance has no API token, so it answers only to a browser on the device itself. Set api.token to use the console from another machine.',
  host_not_allowed: 'Without an API token the appliance answers only when opened as localhost or 127.0.0.1. Set api.token to reach it by another name.',
  cross_site_request: 'The browser marked this request as coming from another site, so the appliance refused it.',
  foreign_origin: 'The request came from a page of another origin, so the appliance refused it.',
  too_many_streams: 'Too many live views and streams are open; close one and try again.',
  too_many_stream_webhooks: 'Too many stream webhooks are still delivering; wait a few minutes and try again.',
  camera_not_running: 'The camera is not running; start it first.',
  config_camera: 'This camera belongs to the configuration file: change or delete it there, then restart the appliance.',
  stream_camera: 'This camera belongs to a live stream and goes away with it.',
  no_good_shots: 'Not enough good shots of one face. Stand alone in front of the camera, facing it, in good light, and try again.',
  no_face: 'No face was found in the picture.',
  multiple_faces: 'More than one face is in the picture; use one with a single face.',
  multiple_people: 'Different people appear one after the other; use a video of one person.',
  face_too_small: 'The face is too small; move closer or use a larger picture.',
  not_an_image: 'That file is not a picture the appliance can read (JPEG or PNG).',
  unsupported_image_format: 'That picture format is not supported; use JPEG or PNG.',
  image_too_large: 'That picture is too large; use a smaller one.',
  unsupported_video: 'That video format is not supported; use y4m or MJPEG.',
  bad_video: 'The video file is damaged or cut short.',
  no_snapshot: 'No snapshot was kept for this event.',
  no_image: 'No photo was kept for this face (it was enrolled before photos were kept).',
  outside_media_dir: 'That file is outside the media folder the API may read (api.media_dir).',
  media_dir_unset: 'Files can be used only once api.media_dir is set in the configuration.',
  no_such_media: 'There is no such file in the media folder.',
  device_not_allowed: 'Only /dev/videoN devices may be used as cameras.',
  pipe_needs_config: 'A command as a camera source belongs in the configuration file.',
  store_full: 'The store is full; the oldest events are being dropped to make room.',
  shutting_down: 'The appliance is shutting down.',
  vision_unavailable: 'Face recognition is not available right now (see Overview for why).',
  resources_exhausted: 'The appliance is short of memory or threads; try again in a moment.',
  request_timeout: 'The request took too long to arrive; try again.',
  payload_too_large: 'That file is larger than the appliance accepts (api.max_body_kb).',
  too_many_attempts: 'Too many wrong tokens in a row. Wait a little and try again.',
  conflict: null,
  not_found: null,
};

/** A sentence for a person, from an ApiError (or any error). */
export function explain(err) {
  if (!err) return '';
  if (!(err instanceof ApiError)) return 'Something went wrong in the page: ' + (err.message || err);
  let sentence = SENTENCES[err.code];
  if (err.code === 'too_many_attempts' && err.retryAfter) {
    sentence = `Too many wrong tokens in a row. Try again in ${err.retryAfter} s.`;
  } else if (err.code === 'conflict') {
    sentence = `${capital(err.message)}: choose another name.`;
  } else if (err.code === 'not_found' && /^path /.test(err.message)) {
    sentence = `This appliance's version does not offer that yet (${err.message}).`;
  } else if (err.code === 'not_found') {
    sentence = `${capital(err.message)}: it may have been removed meanwhile.`;
  } else if (err.code === 'no_good_shots' && err.message) {
    sentence = `${SENTENCES.no_good_shots} (${err.message})`;
  } else if (err.code === 'validation_error' || (!sentence && err.field)) {
    sentence = `${err.field ? err.field + ': ' : ''}${err.message}`;
  } else if (err.code === 'method_not_allowed') {
    sentence = "This appliance's version does not offer that yet.";
  } else if (err.code === 'internal') {
    sentence = `The appliance failed: ${err.message}. Its log says more.`;
  }
  return sentence || capital(err.message) + '.';
}

function capital(s) {
  s = String(s || '').replace(/\.$/, '');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

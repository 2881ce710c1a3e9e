#!/usr/bin/env node
// FaceCV Edge example webhook receiver (Express).
//
// The Node.js twin of webhook_server.py, and the guide's "Node.js Webhook Server" grown up:
//   * verifies the Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature)
//     over the RAW request body with node's crypto, when FACECV_WEBHOOK_SECRET is set; a bad or
//     missing signature gets 401;
//   * deduplicates events by their `id`: delivery is at-least-once, so a batch can arrive twice;
//   * logs each event like the guide ("Recognized: John Doe from entrance_camera");
//   * answers {"status": "received"}.
//
// Run it:
//   npm ci --prefix examples
//   FACECV_WEBHOOK_SECRET=whsec_... node examples/webhook_server.js --port 8080
//
// Options: --host (default 127.0.0.1), --port (default 8080), and --events-file PATH, which
// appends one JSON line per accepted event (verified and not seen before): the event object exactly
// as FaceCV sent it. Ids already in that file count as seen when the server starts again.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const express = require('express');

const SECRET_ENV = 'FACECV_WEBHOOK_SECRET';
// A signature older or newer than this is refused, as the Standard Webhooks libraries do.
const TOLERANCE_SECONDS = 5 * 60;
// How many event ids to remember for deduplication; the oldest are forgotten first.
const MAX_SEEN = 100000;

function fail(message) {
  console.error(`webhook_server.js: ${message}`);
  process.exit(2);
}

/** The HMAC key from `whsec_<base64 key>`, or null when no secret is configured. */
function loadKey(secret) {
  if (!secret) return null;
  if (!secret.startsWith('whsec_')) fail(`${SECRET_ENV} must start with "whsec_" (copy it from the create response)`);
  const b64 = secret.slice('whsec_'.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) fail(`${SECRET_ENV}: the part after "whsec_" is not valid base64`);
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0) fail(`${SECRET_ENV}: the key is empty`);
  return key;
}

/**
 * Checks the Standard Webhooks headers against the raw body. Returns null when the request is
 * authentic, or the reason it is not.
 */
function verifySignature(key, headers, rawBody) {
  const msgId = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!msgId || !timestamp || !signatures) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not a number of seconds';
  const now = Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) return 'webhook-timestamp is too old or too new';

  // Signed content: "{id}.{timestamp}.{body}", with the body's bytes exactly as received.
  const expected = crypto
    .createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${msgId}.${timestamp}.`, 'utf8'), rawBody]))
    .digest();
  // The header may carry several space-separated signatures ("v1,<base64>") during key rotation.
  for (const versioned of signatures.split(' ')) {
    const [version, signature] = versioned.split(',', 2);
    if (version !== 'v1' || !signature) continue;
    const given = Buffer.from(signature, 'base64');
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return null;
  }
  return 'no matching signature';
}

/** The log lines for one event, in the guide's style. */
function describe(event) {
  const camera = event.camera_id;
  const data = event.data || {};
  switch (event.event_type) {
    case 'face_recognized':
      return (data.recognized_faces || []).map((face) => `Recognized: ${face.name} from ${camera}`);
    case 'stranger_alert':
      return [`Stranger alert (${data.alert_level}) from ${camera}`];
    case 'face_detected':
      return [`Detected ${data.face_count} face(s) from ${camera}`];
    case 'attendance_recorded':
      return [`Attendance: ${data.name} ${data.action} from ${camera}`];
    case 'stream_started':
      return [`Stream started on ${camera} (source ${data.source})`];
    case 'stream_stopped':
      return [`Stream stopped on ${camera} (${data.reason})`];
    default:
      return [`Event ${event.event_type} from ${camera}`];
  }
}

function createApp({ secret, eventsFile }) {
  const key = loadKey(secret);
  const seen = new Set(); // insertion-ordered, so the oldest id is the first
  const remember = (id) => {
    seen.add(id);
    if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value);
  };
  if (eventsFile && fs.existsSync(eventsFile)) {
    // Events already written count as seen, so a restart does not accept them again.
    for (const line of fs.readFileSync(eventsFile, 'utf8').split('\n')) {
      try {
        const id = JSON.parse(line).id;
        if (id !== undefined) remember(id);
      } catch {
        // an empty or torn line
      }
    }
  }

  const app = express();
  app.disable('x-powered-by');

  // The raw bytes, not express.json(): the signature covers the body exactly as it was sent.
  const rawBody = express.raw({ type: () => true, limit: '10mb' });

  const receiveWebhook = (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (key) {
      const problem = verifySignature(key, req.headers, body);
      if (problem) {
        console.warn(`Rejected a request to ${req.path}: ${problem}`);
        return res.status(401).json({ status: 'error', message: 'invalid signature' });
      }
    }
    let events;
    try {
      events = JSON.parse(body.toString('utf8')).events || [];
      if (!Array.isArray(events)) throw new Error('events is not a list');
    } catch (e) {
      return res.status(400).json({ status: 'error', message: `Invalid JSON: ${e.message}` });
    }

    const fresh = [];
    const batchIds = new Set();
    for (const event of events) {
      if (event === null || typeof event !== 'object' || Array.isArray(event)) {
        console.warn('Ignored an event that is not a JSON object');
        continue;
      }
      const id = event.id;
      if (id !== undefined && (seen.has(id) || batchIds.has(id))) {
        console.log(`Duplicate event ${id} ignored`);
        continue;
      }
      if (id !== undefined) batchIds.add(id);
      fresh.push(event);
    }

    if (eventsFile && fresh.length > 0) {
      // Written before answering 2xx: if this throws, FaceCV gets a 500 and sends the batch again.
      const fd = fs.openSync(eventsFile, 'a');
      try {
        fs.writeSync(fd, fresh.map((e) => JSON.stringify(e) + '\n').join(''));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }

    for (const event of fresh) {
      if (event.id !== undefined) remember(event.id);
      for (const line of describe(event)) console.log(line);
      // Process the event here (store it, notify someone, ...), or hand it to a queue.
    }
    return res.json({ status: 'received' });
  };

  // The guide's path, and any other path under /webhook/ (per camera, per site, ...).
  app.post(/^\/webhook(\/.*)?$/, rawBody, receiveWebhook);

  app.get('/health', (req, res) => res.json({ status: 'ok', verifying_signatures: key !== null }));

  // Errors from the body parser (too large, aborted) and from writing the events file.
  app.use((err, req, res, next) => {
    console.error(`Webhook processing error: ${err.message}`);
    res.status(err.status || err.statusCode || 500).json({ status: 'error', message: err.message });
  });
  return app;
}

function main() {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'events-file': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: node webhook_server.js [--host 127.0.0.1] [--port 8080] [--events-file PATH]');
    console.log(`Set ${SECRET_ENV}=whsec_... to verify signatures.`);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got ${values.port}`);

  const secret = process.env[SECRET_ENV];
  const app = createApp({ secret, eventsFile: values['events-file'] });
  const server = app.listen(port, values.host, () => {
    const addr = server.address();
    console.log(`FaceCV webhook receiver listening on http://${addr.address}:${addr.port}/webhook/face-recognition`);
    if (secret) console.log(`Verifying Standard Webhooks signatures with the secret from ${SECRET_ENV}`);
    else console.warn(`${SECRET_ENV} is not set: signatures are NOT verified; anyone can post events`);
  });
  server.on('error', (e) => fail(`cannot listen on ${values.host}:${port}: ${e.message}`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) main();

module.exports = { createApp, verifySignature };

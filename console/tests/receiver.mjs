// A webhook receiver on loopback for the console's browser tests, run by scripts/console-test.sh
// as its own process beside the appliance.
//
// Every POST outside /_control is a delivery: it is kept (path, headers, JSON body, whether its
// Standard Webhooks signature verified against the secret the test handed over) and answered with
// the status the test set, so the suite can make deliveries fail (dead letters) and succeed
// again (replay). The test reads what arrived at GET /_control/received and sets the answer with
// POST /_control {"status": 500, "secret": "whsec_..."}.
//
//   node receiver.mjs --port 8080
import { createServer } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8080' } },
});

let answer = 200;
let secret = null;
const received = [];

/** Whether `webhook-signature` is the HMAC of "id.timestamp.body" under `secret`; null without one. */
function verified(headers, body) {
  if (!secret) return null;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signed = `${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`;
  const expected = createHmac('sha256', key).update(signed).digest();
  return String(headers['webhook-signature'] || '')
    .split(' ')
    .map((s) => Buffer.from(s.replace(/^v1,/, ''), 'base64'))
    .some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected));
}

function reply(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url.startsWith('/_control')) {
      if (req.method === 'GET') return reply(res, 200, { answer, received });
      const asked = body ? JSON.parse(body) : {};
      if (asked.status !== undefined) answer = asked.status;
      if (asked.secret !== undefined) secret = asked.secret;
      if (asked.clear) received.length = 0;
      return reply(res, 200, { answer });
    }
    let json = null;
    try {
      json = JSON.parse(body);
    } catch {
      // kept as null: the suite fails on a delivery that is not JSON
    }
    received.push({
      at: new Date().toISOString(),
      path: req.url,
      status: answer,
      verified: verified(req.headers, body),
      webhook_id: req.headers['webhook-id'] || null,
      body: json,
    });
    reply(res, answer, answer < 300 ? { status: 'received' } : { error: 'failing on purpose' });
  });
});

server.listen(Number(values.port), values.host, () => {
  console.log(`receiver: listening on http://${values.host}:${values.port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

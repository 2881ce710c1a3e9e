// System: what this appliance is and runs with (read-only), its certificate, the API token's
// rotation, and the store's integrity check.

import { api, session } from '../api.js';
import { h, pageHeader, badge, busy, toast, confirmDialog, copyButton, errorBox, bytes, duration, time } from '../ui.js';

function identityCard(sys) {
  return h('section', { class: 'card', 'aria-labelledby': 'sys-id' },
    h('h2', { id: 'sys-id' }, 'This appliance'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Device id'), h('dd', {}, h('code', {}, sys.device_id || '—')),
      h('dt', {}, 'Host name'), h('dd', {}, sys.hostname || '—'),
      h('dt', {}, 'Version'), h('dd', {}, sys.version),
      h('dt', {}, 'Up for'), h('dd', {}, duration(sys.uptime_seconds)),
      sys.store ? [
        h('dt', {}, 'Store'), h('dd', { class: 'break' }, h('code', {}, sys.store.path), ` · ${bytes(sys.store.used_bytes)} of ${bytes(sys.store.quota_bytes)}`),
      ] : null,
      h('dt', {}, 'Status pages'), h('dd', {},
        h('a', { href: '/health', target: '_blank', rel: 'noopener' }, '/health'), ' (JSON) · ',
        h('a', { href: '/metrics', target: '_blank', rel: 'noopener' }, '/metrics'), ' (Prometheus)'),
      h('dt', {}, 'API reference'), h('dd', {},
        h('a', { href: '/api/v1/openapi.json', target: '_blank', rel: 'noopener' }, '/api/v1/openapi.json'), ' (OpenAPI 3.1)')));
}

function certificateCard(https) {
  const card = h('section', { class: 'card', 'aria-labelledby': 'sys-cert' }, h('h2', { id: 'sys-cert' }, 'HTTPS certificate'));
  if (!https) {
    card.append(h('p', {}, 'HTTPS is off on this appliance (no api.tls_listen). The console and the token travel in clear on the LAN; set api.tls_listen (e.g. "0.0.0.0:7443") to serve them over HTTPS.'));
    return card;
  }
  const fp = https.fingerprint_sha256 || '';
  card.append(
    h('dl', { class: 'kv' },
      h('dt', {}, 'HTTPS port'), h('dd', {}, String(https.port)),
      h('dt', {}, 'Certificate'), h('dd', {}, https.certificate === 'self_signed'
        ? 'made by the appliance on its first start (self-signed)' : 'configured (api.tls_cert and api.tls_key)'),
      h('dt', {}, 'SHA-256 fingerprint'), h('dd', {}, h('code', { class: 'break' }, fp), ' ', copyButton(fp, 'Copy'))),
    h('details', {},
      h('summary', {}, 'How to check it is this appliance'),
      h('p', { class: 'small' }, 'A self-signed certificate makes the browser warn once. Before you accept it, compare fingerprints: ',
        'in Chrome or Edge, click the warning or the padlock, then "Certificate details" and look at the SHA-256 fingerprint; ',
        'in Firefox, "Advanced" then "View Certificate". It must equal the one above, which the appliance also prints in its log, ',
        'on the first-boot console and in facecv.txt on the SD card. ',
        location.protocol === 'https:' ? 'You are on HTTPS now.' : `You are on plain HTTP now: https://${location.hostname}:${https.port}/ is the same console over HTTPS.`)));
  return card;
}

function tokenCard(sys) {
  const out = h('div', {});
  const rotate = h('button', { type: 'button', class: 'btn-danger' }, 'Rotate the API token');
  const sources = {
    config: 'the configuration file (api.token)',
    state: 'the file api-token in the state folder, written by the last rotation (it wins over api.token in the configuration file)',
    none: 'nowhere: no token is set, so the API answers only to this device itself',
  };
  const source = h('span', {}, sources[sys.token_source] || 'unknown');
  rotate.addEventListener('click', async () => {
    const yes = await confirmDialog('Make a new API token? The old one stops working at once: every script, client and other browser that uses it must be given the new one. This browser stays signed in.',
      { confirm: 'Rotate token' });
    if (!yes) return;
    try {
      const answer = await busy(rotate, api('POST', '/api/v1/system/token'));
      out.replaceChildren(h('div', { class: 'notice', role: 'status' },
        h('p', {}, h('strong', {}, 'The new token, shown this once:')),
        h('p', { class: 'row' }, h('code', { class: 'secret grow' }, answer.token), copyButton(answer.token, 'Copy token')),
        h('p', { class: 'small' }, 'Written to ', h('code', { class: 'break' }, answer.written_to),
          ', which wins over api.token in the configuration file from now on. Store it in your password manager; it is not shown again.')));
      toast('The API token is rotated; the old one no longer works.', 'ok');
      source.textContent = sources.state;
      await session(true);
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'sys-token' },
    h('h2', { id: 'sys-token' }, 'API token'),
    h('p', {}, 'The token in use comes from ', source, '.'),
    h('div', { class: 'row' }, rotate), out);
}

function integrityCard() {
  const out = h('div', { role: 'status' });
  const run = h('button', { type: 'button' }, 'Check the store now');
  run.addEventListener('click', async () => {
    out.replaceChildren(h('p', { class: 'muted small' }, 'Checking every page of the store; on a large store on an SD card this takes a while…'),
      h('div', { class: 'bar indeterminate', 'aria-hidden': 'true' }, h('span', {})));
    try {
      const r = await busy(run, api('POST', '/api/v1/system/integrity'));
      out.replaceChildren(h('div', {}, h('p', {}, badge(r.ok ? 'No damage found' : 'Damaged', r.ok ? 'ok' : 'err'), ' checked ', time(r.checked_at)),
        (r.messages || []).length > 0 && !(r.ok && r.messages.length === 1 && r.messages[0] === 'ok')
          ? h('ul', { class: 'small' }, r.messages.map((m) => h('li', {}, m))) : null,
        r.ok ? null : h('p', { class: 'small' }, 'Events past the damage may be lost. Back up the store folder, then see the README (“A damaged store is seen”).')));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'sys-store' },
    h('h2', { id: 'sys-store' }, 'Store integrity'),
    h('p', { class: 'small' }, 'SQLite\'s quick check of the event store, the gallery and the delivery state. The appliance also checks at every start.'),
    h('div', { class: 'row' }, run), out);
}

function configCard(sys) {
  return h('section', { class: 'card', 'aria-labelledby': 'sys-config' },
    h('div', { class: 'card-head' }, h('h2', { id: 'sys-config' }, 'Configuration in use'),
      copyButton(JSON.stringify(sys.config, null, 2), 'Copy')),
    h('p', { class: 'small' }, sys.config_file
      ? ['Read from ', h('code', { class: 'break' }, sys.config_file), ' at start, with defaults filled in. Read-only here: edit the file and restart the appliance. Secrets are shown as <redacted>.']
      : 'The built-in defaults (no configuration file was given). Secrets are shown as <redacted>.'),
    h('pre', { class: 'pre', tabindex: '0', 'aria-label': 'The configuration as JSON' }, JSON.stringify(sys.config, null, 2)));
}

export default {
  title: 'System',
  async render(main) {
    main.append(pageHeader('System'));
    let sys;
    try {
      sys = await api('GET', '/api/v1/system');
    } catch (e) {
      if (e.status !== 404) throw e;
      // An appliance without /api/v1/system: what /health says, and why the rest is missing.
      const health = await api('GET', '/health');
      main.append(h('p', { class: 'notice' }, 'This appliance\'s version does not show its configuration or rotate its token from the console; here is what /health says.'),
        h('div', { class: 'cards' },
          identityCard({ version: health.version, uptime_seconds: health.uptime_seconds,
            store: { path: '—', used_bytes: health.store.used_bytes, quota_bytes: health.store.quota_bytes } }),
          certificateCard(health.https)),
        integrityCard());
      return;
    }
    main.append(h('div', { class: 'cards cards-wide' }, identityCard(sys), certificateCard(sys.https)),
      h('div', { class: 'cards cards-wide' }, tokenCard(sys), integrityCard()),
      configCard(sys));
  },
};

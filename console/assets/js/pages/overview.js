// Overview: is the appliance well, how full is its store, is delivery keeping up, and what
// happened lately. Refreshed every few seconds while shown (and while the tab is visible).

import { api } from '../api.js';
import { h, pageHeader, errorBox, badge, bytes, duration, time, emptyState } from '../ui.js';
import { eventLine } from '../events-view.js';

const EVERY_MS = 5000;
const LATEST = 8;

function integrityText(integrity) {
  if (integrity === 'ok') return ['checked, no damage', 'ok'];
  if (integrity === 'checking') return ['being checked', 'muted'];
  if (integrity && integrity.damaged) return [`damaged: ${integrity.damaged}`, 'err'];
  if (integrity && integrity.failed) return [`check failed: ${integrity.failed}`, 'warn'];
  return ['unknown', 'muted'];
}

function healthCard(health) {
  const ok = health.status === 'ok';
  const problems = [];
  if (health.store && !health.store.ok) problems.push(`Store: ${health.store.reason || health.store.state}`);
  const vision = health.vision || {};
  for (const m of vision.models || []) {
    if (m.error) problems.push(`${m.role} model (${m.key}): ${m.error}`);
  }
  if (vision.engine_error) problems.push(`Recognition: ${vision.engine_error}`);
  return h('section', { class: 'card', 'aria-labelledby': 'ov-health' },
    h('h2', { id: 'ov-health' }, 'Health'),
    h('p', { class: 'stat' }, badge(ok ? 'OK' : 'Degraded', ok ? 'ok' : 'warn')),
    problems.length ? h('ul', { class: 'small' }, problems.map((p) => h('li', {}, p))) : null,
    h('dl', { class: 'kv' },
      h('dt', {}, 'Version'), h('dd', {}, health.version),
      h('dt', {}, 'Up for'), h('dd', {}, duration(health.uptime_seconds)),
      h('dt', {}, 'Events recorded'), h('dd', {}, String(health.store ? health.store.head_seq : '—'))));
}

function storeCard(store) {
  const used = store.used_bytes || 0;
  const quota = store.quota_bytes || 0;
  const share = quota ? Math.min(1, used / quota) : 0;
  const bar = h('div', {
    class: `bar${share > 0.9 ? ' err' : share > 0.75 ? ' warn' : ''}`,
    role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': String(quota), 'aria-valuenow': String(used),
    'aria-label': 'Store use against its quota', 'aria-valuetext': `${bytes(used)} of ${bytes(quota)}`,
  }, h('span', {}));
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  const [integrity, kind] = integrityText(store.integrity);
  return h('section', { class: 'card', 'aria-labelledby': 'ov-store' },
    h('h2', { id: 'ov-store' }, 'Store'),
    h('p', { class: 'stat' }, `${Math.round(share * 100)} %`),
    bar,
    h('p', { class: 'muted small' }, `${bytes(used)} of ${bytes(quota)} (storage.max_size); the oldest delivered events go first.`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'State'), h('dd', {}, badge(store.ok ? 'OK' : 'Degraded', store.ok ? 'ok' : 'warn'),
        store.reason ? ` ${store.reason}` : ''),
      h('dt', {}, 'Integrity'), h('dd', {}, badge(integrity, kind))));
}

function deliveryCard(hooks, mqtt) {
  const rows = [];
  for (const [id, s] of Object.entries((hooks && hooks.webhooks) || {})) {
    rows.push(h('tr', {},
      h('td', { 'data-label': 'Sink' }, h('a', { href: '/webhooks' }, `Webhook ${id}`)),
      h('td', { 'data-label': 'State' }, s.enabled ? badge('enabled', 'ok') : badge('disabled', 'muted')),
      h('td', { 'data-label': 'Backlog', class: 'num' }, String(s.backlog)),
      h('td', { 'data-label': 'Dead letters', class: 'num' }, String(s.dead_letters))));
  }
  if (mqtt && mqtt.enabled) {
    rows.push(h('tr', {},
      h('td', { 'data-label': 'Sink' }, h('a', { href: '/mqtt' }, `MQTT ${mqtt.broker || ''}`)),
      h('td', { 'data-label': 'State' }, mqtt.connected ? badge('connected', 'ok') : badge('disconnected', 'err')),
      h('td', { 'data-label': 'Backlog', class: 'num' }, String(mqtt.backlog ?? '—')),
      h('td', { 'data-label': 'Dead letters', class: 'num' }, '—')));
  }
  const mqttLine = !mqtt || !mqtt.enabled
    ? h('p', { class: 'muted small' }, 'MQTT is off (no [mqtt] section in the configuration).')
    : mqtt.connected
      ? h('p', { class: 'small' }, 'MQTT connected to ', h('code', {}, mqtt.broker || ''),
        mqtt.connected_since ? [' since ', time(mqtt.connected_since)] : null, '.')
      : h('p', { class: 'small' }, badge('MQTT disconnected', 'err'), ' ', mqtt.last_error || 'no broker answer yet');
  return h('section', { class: 'card', 'aria-labelledby': 'ov-delivery' },
    h('h2', { id: 'ov-delivery' }, 'Delivery'),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Sink'), h('th', {}, 'State'),
          h('th', { class: 'num' }, 'Backlog'), h('th', { class: 'num' }, 'Dead letters'))),
        h('tbody', {}, rows)))
      : emptyState('Nothing delivers events yet.', h('a', { href: '/webhooks' }, 'Add a webhook')),
    mqttLine);
}

function eventsCard(events) {
  return h('section', { class: 'card', 'aria-labelledby': 'ov-events' },
    h('div', { class: 'card-head' }, h('h2', { id: 'ov-events' }, 'Latest events')),
    events.length
      ? h('ul', { class: 'plain-list latest' }, events.map(({ event }) => h('li', {}, eventLine(event), time(event.timestamp))))
      : emptyState('No events yet. Add a camera, or enrol someone and let the camera see them.'));
}

/** The newest events: `order=desc` where the appliance has it, else the last ones by sequence. */
async function latest(headSeq) {
  const page = await api('GET', `/api/v1/events?order=desc&limit=${LATEST}`);
  if ('next_before_seq' in page) return page.events;
  const older = await api('GET', `/api/v1/events?after_seq=${Math.max(0, headSeq - LATEST)}&limit=${LATEST}`);
  return older.events.reverse();
}

/** Keeps the keyboard's place across a refresh: focuses the new link that matches the old one. */
function refocus(root, old) {
  const same = [...root.querySelectorAll('a, button')].find((el) =>
    el.tagName === old.tagName && el.getAttribute('href') === old.getAttribute('href') &&
    el.textContent === old.textContent);
  if (same) same.focus({ preventScroll: true });
}

export default {
  title: 'Overview',
  async render(main) {
    const live = h('div', { 'aria-live': 'off' });
    main.append(pageHeader('Overview',
      h('a', { href: '/events', class: 'btn' }, 'All events'),
      h('a', { href: '/cameras', class: 'btn' }, 'Cameras')), live);
    let timer = null;
    let stopped = false;

    async function refresh() {
      if (stopped) return;
      if (document.hidden) {
        timer = setTimeout(refresh, EVERY_MS);
        return;
      }
      try {
        const [health, hooks, mqtt, cameras] = await Promise.all([
          api('GET', '/health'),
          api('GET', '/api/v1/webhooks/stats'),
          api('GET', '/api/v1/mqtt/stats'),
          api('GET', '/api/v1/cameras'),
        ]);
        const events = await latest(health.store.head_seq);
        if (stopped) return;
        const running = cameras.filter((c) => c.running).length;
        const camerasCard = h('section', { class: 'card', 'aria-labelledby': 'ov-cameras' },
          h('h2', { id: 'ov-cameras' }, 'Cameras'),
          cameras.length
            ? [h('p', { class: 'stat' }, `${running} of ${cameras.length} running`),
              h('ul', { class: 'plain-list small' }, cameras.map((c) => h('li', {}, c.camera_id, ' ',
                badge(c.state, c.state === 'running' ? 'ok' : c.state === 'stopped' ? 'muted' : 'warn'))))]
            : emptyState('No camera yet.', h('a', { href: '/cameras' }, 'Add a camera')));
        const focused = live.contains(document.activeElement) ? document.activeElement : null;
        live.replaceChildren(
          h('div', { class: 'cards' }, healthCard(health), storeCard(health.store), camerasCard),
          h('div', { class: 'cards cards-wide' }, deliveryCard(hooks, mqtt), eventsCard(events)),
          h('p', { class: 'muted small' }, 'Refreshed every 5 s while this page is open.'));
        if (focused) refocus(live, focused);
      } catch (e) {
        if (stopped) return;
        live.replaceChildren(errorBox(e));
      }
      if (!stopped) timer = setTimeout(refresh, EVERY_MS);
    }

    await refresh();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  },
};

// Events: the timeline, newest first, filtered by type, camera, person and time (kept in the
// URL, so a filtered view can be bookmarked or shared), with snapshots and corrections.

import { api } from '../api.js';
import { h, pageHeader, badge, busy, time, emptyState, errorBox } from '../ui.js';
import { EVENT_TYPES, describe } from '../events-view.js';
import { strangerActions, recognitionActions } from './events-fix.js';

const PAGE = 25;
const FILTERS = ['event_type', 'camera_id', 'person', 'since', 'until'];

/** An RFC 3339 instant as a datetime-local input's value (local time), and back. */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function fromLocalInput(value) {
  const d = new Date(value);
  return value && !Number.isNaN(d.getTime()) ? d.toISOString() : '';
}

function snapshot(event, what) {
  const img = h('img', {
    class: 'snapshot', loading: 'lazy', decoding: 'async', width: '320', height: '240',
    src: `/api/v1/events/${encodeURIComponent(event.id)}/snapshot.jpg`,
    alt: `Snapshot of ${what} at ${event.camera_id}`,
  });
  img.addEventListener('error', () => img.replaceWith(h('p', { class: 'muted small' }, 'No snapshot was kept for this event.')), { once: true });
  return img;
}

function eventItem({ seq, snapshot: kept, event }) {
  const d = describe(event);
  let media = null;
  let actions = null;
  // `snapshot` says whether one is kept (an older appliance does not say: then ask).
  const shot = (what) => (kept === false
    ? h('p', { class: 'muted small' }, 'No snapshot was kept for this event.')
    : snapshot(event, what));
  if (event.event_type === 'stranger_alert') {
    media = shot('a stranger');
    // Naming a stranger enrols the face of the snapshot: without one there is nothing to enrol.
    actions = kept === false ? null : strangerActions(event);
  } else if (event.event_type === 'face_recognized') {
    const names = (event.data.recognized_faces || []).map((f) => f.name).join(', ');
    media = shot(names || 'the recognised face');
    actions = recognitionActions(event);
  }
  const meta = event.metadata || {};
  return h('li', { class: 'event' },
    h('div', { class: 'event-main' },
      h('div', { class: 'event-title' }, badge(d.label, d.kind), ' ', d.title),
      h('div', { class: 'event-meta' }, `${event.camera_id} · `, time(event.timestamp),
        ` · #${seq}${meta.threshold ? ` · threshold ${meta.threshold}` : ''}`)),
    media ? h('div', { class: 'event-media' }, media) : null,
    actions);
}

/** Filters the appliance could not apply (an older version): applied here on the page. */
function locallyFiltered(events, f) {
  return events.filter(({ event }) => {
    if (f.person) {
      const d = event.data || {};
      const names = (d.recognized_faces || []).map((x) => x.name).concat(d.name ? [d.name] : []);
      if (!names.includes(f.person)) return false;
    }
    if (f.since && event.timestamp < f.since) return false;
    if (f.until && event.timestamp > f.until) return false;
    return true;
  });
}

/** One page of events before `before` (null: the newest), newest first: `{events, before}`. */
async function fetchPage(filters, before) {
  const q = new URLSearchParams({ order: 'desc', limit: String(PAGE) });
  if (before !== null) q.set('before_seq', String(before));
  for (const k of FILTERS) if (filters[k]) q.set(k, filters[k]);
  const page = await api('GET', `/api/v1/events?${q}`);
  if ('next_before_seq' in page) {
    const more = page.events.length === PAGE && page.next_before_seq !== null;
    return { events: page.events, before: more ? page.next_before_seq : null };
  }
  // An appliance without `order=desc`: read the window of sequence numbers just below `before`.
  const top = before !== null ? before : (await api('GET', '/health')).store.head_seq + 1;
  const after = Math.max(0, top - 1 - PAGE);
  const old = new URLSearchParams({ after_seq: String(after), limit: String(PAGE) });
  for (const k of ['event_type', 'camera_id']) if (filters[k]) old.set(k, filters[k]);
  const window = await api('GET', `/api/v1/events?${old}`);
  const events = locallyFiltered(window.events.filter((e) => e.seq < top), filters).reverse();
  return { events, before: after > 0 ? after + 1 : null };
}

function filterForm(ctx, cameras, people, onApply) {
  const p = ctx.params;
  const form = h('form', { class: 'filters card', role: 'search', 'aria-label': 'Filter events' },
    h('div', { class: 'field' }, h('label', { for: 'f-type' }, 'Type'),
      h('select', { id: 'f-type', name: 'event_type' }, h('option', { value: '' }, 'All types'),
        EVENT_TYPES.map(([v, label]) => h('option', { value: v, selected: p.get('event_type') === v }, label)))),
    h('div', { class: 'field' }, h('label', { for: 'f-camera' }, 'Camera'),
      h('select', { id: 'f-camera', name: 'camera_id' }, h('option', { value: '' }, 'All cameras'),
        [...new Set([...cameras, p.get('camera_id')].filter(Boolean))].map((c) =>
          h('option', { value: c, selected: p.get('camera_id') === c }, c)))),
    h('div', { class: 'field' }, h('label', { for: 'f-person' }, 'Person'),
      h('input', { id: 'f-person', name: 'person', list: 'f-people', value: p.get('person') || '', autocomplete: 'off', placeholder: 'Anyone' }),
      h('datalist', { id: 'f-people' }, people.map((n) => h('option', { value: n })))),
    h('div', { class: 'field' }, h('label', { for: 'f-since' }, 'From'),
      h('input', { id: 'f-since', name: 'since', type: 'datetime-local', value: p.get('since') ? toLocalInput(p.get('since')) : '' })),
    h('div', { class: 'field' }, h('label', { for: 'f-until' }, 'Until'),
      h('input', { id: 'f-until', name: 'until', type: 'datetime-local', value: p.get('until') ? toLocalInput(p.get('until')) : '' })),
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'btn-primary' }, 'Show'),
      h('button', { type: 'reset' }, 'Clear')));
  const read = () => ({
    event_type: form.elements.event_type.value,
    camera_id: form.elements.camera_id.value,
    person: form.elements.person.value.trim(),
    since: fromLocalInput(form.elements.since.value),
    until: fromLocalInput(form.elements.until.value),
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    onApply(read());
  });
  form.addEventListener('reset', () => setTimeout(() => {
    for (const el of form.querySelectorAll('input')) el.value = '';
    onApply(read());
  }));
  return form;
}

/** The filters, folded away on a phone unless some are set (the timeline comes first there). */
function filterBox(form, active) {
  const wide = window.matchMedia('(min-width: 601px)').matches;
  return h('details', { class: 'filter-box', open: wide || active > 0 },
    h('summary', {}, active ? `Filters (${active} set)` : 'Filters'), form);
}

export default {
  title: 'Events',
  async render(main, ctx) {
    const [cameras, faces] = await Promise.all([
      api('GET', '/api/v1/cameras').catch(() => []),
      api('GET', '/api/v1/faces?limit=10000').catch(() => ({ faces: [] })),
    ]);
    const people = [...new Set((faces.faces || []).map((f) => f.name))].sort();
    const list = h('ol', { class: 'timeline', 'aria-label': 'Events, newest first' });
    const status = h('p', { class: 'muted small', role: 'status' });
    const more = h('button', { type: 'button', hidden: true }, 'Load older events');
    const refresh = h('button', { type: 'button' }, 'Refresh');
    let filters = Object.fromEntries(FILTERS.map((k) => [k, ctx.params.get(k) || '']));
    let before = null;
    let generation = 0;

    async function load(reset) {
      const mine = reset ? ++generation : generation;
      if (reset) {
        before = null;
        list.replaceChildren();
        status.textContent = 'Loading…';
      }
      try {
        const page = await fetchPage(filters, before);
        if (mine !== generation || !ctx.current) return;
        list.append(...page.events.map(eventItem));
        before = page.before;
        more.hidden = before === null;
        const shown = list.children.length;
        status.textContent = shown ? `${shown} event${shown === 1 ? '' : 's'} shown, newest first.` : '';
        if (!shown) {
          const filtered = FILTERS.some((k) => filters[k]);
          list.replaceChildren(h('li', {}, emptyState(filtered
            ? 'No event matches these filters. Widen the time range or clear the filters.'
            : 'No events yet. Events appear when a camera sees faces; add a camera on the Cameras page.')));
        }
      } catch (e) {
        if (mine !== generation) return;
        status.textContent = '';
        list.append(h('li', {}, errorBox(e, () => load(reset))));
      }
    }

    more.addEventListener('click', () => busy(more, load(false)));
    refresh.addEventListener('click', () => busy(refresh, load(true)));
    main.append(
      pageHeader('Events', refresh),
      filterBox(filterForm(ctx, cameras.map((c) => c.camera_id), people, (f) => {
        filters = f;
        const q = new URLSearchParams();
        for (const k of FILTERS) if (f[k]) q.set(k, f[k]);
        ctx.replaceParams(q);
        load(true);
      }), FILTERS.filter((k) => filters[k]).length),
      status, list, h('div', { class: 'row' }, more));
    await load(true);
    return () => {
      generation += 1;
    };
  },
};

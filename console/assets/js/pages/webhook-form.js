// The webhook form of the Webhooks page: every field of a webhook's configuration, for creating
// one and for editing it, with the API's 422s shown beside the field they name.
import { api } from '../api.js';
import { h, showFieldErrors, busy } from '../ui.js';

export const EVENT_TYPES = [
  ['face_recognized', 'Face recognised'],
  ['stranger_alert', 'Stranger alert'],
  ['face_detected', 'Face detected'],
  ['attendance_recorded', 'Attendance recorded'],
  ['stream_started', 'Stream started'],
  ['stream_stopped', 'Stream stopped'],
];

let nextId = 0;
const uid = (p) => `wh-${p}-${++nextId}`;

/** A labelled input with a hint under it; the hint is the input's description. */
function field(name, label, attrs = {}, hint = '') {
  const id = uid(name);
  const hintId = hint ? `${id}-hint` : null;
  const input = attrs.rows
    ? h('textarea', { id, name, ...attrs, ...(hintId ? { 'aria-describedby': hintId } : {}) })
    : h('input', { id, name, type: 'text', ...attrs, ...(hintId ? { 'aria-describedby': hintId } : {}) });
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : '');
}

const num = (name, label, min, max, step, hint) =>
  field(name, label, { type: 'number', min, max, step, inputmode: 'decimal' }, hint);

/** "Name: value" lines to an object, and back. */
function parseHeaders(text) {
  const headers = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(':');
    if (at < 1) throw Object.assign(new Error(`"${line}" is not "Name: value"`), { field: 'headers' });
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return headers;
}

function headersText(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}

/** The event types as checkboxes, ticked as `existing` has them. */
function eventTypeBoxes(existing) {
  return EVENT_TYPES.map(([value, label]) => {
    const id = uid(value);
    const box = h('input', { type: 'checkbox', name: 'event_types', value, id });
    box.checked = Boolean(existing?.event_types?.includes(value));
    return h('span', { class: 'check' }, box, h('label', { for: id }, label));
  });
}

/** The form's inputs from a webhook (or FaceCV's defaults for a new one). */
function fillValues(form, existing) {
  const el = form.elements;
  const values = existing || { batch_size: 10, batch_timeout: 1, timeout: 30, retry_count: 3, retry_delay: 1 };
  for (const key of ['webhook_id', 'url', 'batch_size', 'batch_timeout', 'timeout', 'retry_count', 'retry_delay']) {
    if (values[key] !== undefined && values[key] !== null) el[key].value = values[key];
  }
  el.camera_ids.value = (existing?.camera_ids || []).join(', ');
  el.headers.value = headersText(existing?.headers);
}

/** The webhook the form describes, as the API takes it; throws `{field, message}` on a bad value. */
function readBody(form, enabled) {
  const el = form.elements;
  const b = {
    webhook_id: el.webhook_id.value.trim(),
    url: el.url.value.trim(),
    enabled: enabled.checked,
    headers: parseHeaders(el.headers.value),
  };
  const picked = [...form.querySelectorAll('input[name="event_types"]:checked')].map((i) => i.value);
  if (picked.length) b.event_types = picked;
  const cams = el.camera_ids.value.split(',').map((s) => s.trim()).filter(Boolean);
  if (cams.length) b.camera_ids = cams;
  for (const key of ['batch_size', 'batch_timeout', 'timeout', 'retry_count', 'retry_delay']) {
    const raw = el[key].value.trim();
    if (raw === '') continue;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw Object.assign(new Error('must be a number'), { field: key });
    b[key] = n;
  }
  const secret = el.secret?.value.trim();
  if (secret) b.secret = secret;
  return b;
}

/**
 * The form to create a webhook (`existing` absent) or edit one. `onDone(answer)` gets the API's
 * answer (with the secret, once, after a create); `onCancel()` closes it.
 */
export function webhookForm(existing, { onDone, onCancel }) {
  const editing = Boolean(existing);
  const headingId = uid('form');
  const title = editing ? `Edit ${existing.webhook_id}` : 'Add a webhook';
  const types = eventTypeBoxes(existing);
  const enabled = h('input', { type: 'checkbox', name: 'enabled', id: uid('enabled') });
  enabled.checked = existing ? existing.enabled : true;
  const save = h('button', { type: 'submit', class: 'btn-primary' }, editing ? 'Save' : 'Create');
  const cancel = h('button', { type: 'button' }, 'Cancel');

  const form = h('form', { class: 'card form webhook-form', 'aria-labelledby': headingId, novalidate: true },
    h('h2', { id: headingId }, title),
    field('webhook_id', 'Webhook id', { required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false', ...(editing ? { readonly: true } : {}) },
      editing ? 'A webhook keeps its id; delete it and add another to rename.' : 'Letters, digits, _ and -: used in URLs, logs and metrics.'),
    field('url', 'URL', { type: 'url', required: true, inputmode: 'url', autocomplete: 'off', spellcheck: 'false', placeholder: 'https://receiver.example/webhook' }),
    h('fieldset', { 'aria-describedby': `${headingId}-types` },
      h('legend', {}, 'Event types'),
      h('div', { class: 'segmented' }, ...types),
      h('p', { class: 'hint', id: `${headingId}-types` }, 'None ticked: every type, including types added later.')),
    field('camera_ids', 'Cameras', { autocomplete: 'off', spellcheck: 'false' }, 'Camera ids separated by commas; empty: every camera.'),
    h('div', { class: 'field-row' },
      num('batch_size', 'Batch size', 1, 100, 1, 'Events per request, 1 to 100.'),
      num('batch_timeout', 'Batch timeout (s)', 0.1, 60, 'any', 'How long a batch waits to fill, 0.1 to 60.'),
      num('timeout', 'Timeout (s)', 1, 300, 'any', 'For the receiver to answer, 1 to 300.')),
    h('div', { class: 'field-row' },
      num('retry_count', 'Retries', 0, 10, 1, 'After the first attempt, 0 to 10; then the batch is a dead letter.'),
      num('retry_delay', 'Retry delay (s)', 1, 60, 'any', 'The first wait, doubled at each retry, 1 to 60.')),
    field('headers', 'Headers', { rows: 3, spellcheck: 'false', placeholder: 'Authorization: Bearer …' }, 'Sent with every request, one "Name: value" a line.'),
    editing ? '' : field('secret', 'Signing secret', { autocomplete: 'off', spellcheck: 'false', placeholder: 'whsec_…' },
      'Empty: the appliance makes one and shows it once. Or give your receiver\'s: whsec_ and a base64 key.'),
    h('div', { class: 'check' }, enabled, h('label', { for: enabled.id }, 'Enabled')),
    h('div', { class: 'row' }, save, cancel));

  fillValues(form, existing);

  cancel.addEventListener('click', onCancel);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, submit());
  });

  async function submit() {
    showFieldErrors(form, null);
    let b;
    try {
      b = readBody(form, enabled);
    } catch (err) {
      return showFieldErrors(form, err);
    }
    try {
      const answer = editing
        ? await api('PUT', `/api/v1/webhooks/${encodeURIComponent(existing.webhook_id)}`, b)
        : await api('POST', '/api/v1/webhooks', b);
      onDone(answer);
    } catch (err) {
      // `headers.X-Name` names one header: the error goes beside the headers box, naming it.
      if (err.field?.startsWith('headers.')) {
        showFieldErrors(form, { field: 'headers', message: `${err.field.slice(8)}: ${err.message}` });
      } else {
        // Beside the field the API named, or above the form with explain()'s sentence.
        showFieldErrors(form, err);
      }
    }
  }

  return form;
}

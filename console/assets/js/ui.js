// Small DOM helpers every page shares. Data from the appliance always goes in as text (never as
// markup), so a camera or person named "<img onerror=...>" is shown, not run.

import { explain } from './api.js';

/**
 * Builds an element: `attrs` are attributes (`class`, `for`, `aria-*`, ...), `on<event>`
 * functions become listeners, `true` sets a boolean attribute and `false`/null/undefined leaves
 * it out. Children are nodes, strings (set as text), numbers, arrays of those, or null (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** A short message in the toast region, read out by screen readers; `kind`: info, ok, error. */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region) return;
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, message), close);
  const remove = () => item.remove();
  close.addEventListener('click', remove);
  region.appendChild(item);
  setTimeout(remove, kind === 'error' ? 12000 : 5000);
}

/**
 * Asks a yes/no question in a modal `<dialog>`; resolves to true when confirmed.
 * `options.confirm` names the button (default "Confirm"), `options.danger` colours it.
 */
export function confirmDialog(text, options = {}) {
  return new Promise((resolve) => {
    const yes = h('button', { type: 'submit', value: 'yes', class: options.danger === false ? 'btn-primary' : 'btn-danger' },
      options.confirm || 'Confirm');
    const no = h('button', { type: 'submit', value: 'no', formnovalidate: true }, 'Cancel');
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'dialog-text' },
      h('form', { method: 'dialog' },
        h('p', { id: 'dialog-text' }, text),
        h('div', { class: 'row end' }, no, yes)));
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue === 'yes');
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus();
  });
}

/**
 * Shows an API error in a form: beside the input named `err.field` (with `aria-invalid` and
 * focus), or at the top of the form when no input has that name. Clears earlier errors first;
 * `showFieldErrors(form, null)` only clears. Returns whether a field was marked.
 */
export function showFieldErrors(form, err) {
  for (const old of form.querySelectorAll('.field-error, .form-error')) old.remove();
  for (const bad of form.querySelectorAll('[aria-invalid]')) {
    bad.removeAttribute('aria-invalid');
    bad.removeAttribute('aria-errormessage');
  }
  if (!err) return false;
  const input = err.field ? fieldNamed(form, err.field) : null;
  if (input) {
    const id = `err-${input.name || 'field'}-${Math.random().toString(36).slice(2, 7)}`;
    const note = h('p', { class: 'field-error', id }, fieldMessage(err));
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-errormessage', id);
    const field = input.closest('.field');
    if (field) field.append(note);
    else input.after(note);
    input.focus();
    return true;
  }
  form.prepend(h('p', { class: 'form-error', role: 'alert' }, explain(err)));
  return false;
}

/** The input an API field names: `name`, the last part of `policy.fps`, or `file` for `file[0]`. */
function fieldNamed(form, field) {
  const tries = [field, field.replace(/\[\d+\]$/, ''), field.split('.').pop()];
  for (const name of tries) {
    const el = form.elements.namedItem(name);
    if (el instanceof Element) return el;
    if (el && el[0]) return el[0];
  }
  return null;
}

/** The API's message without the `field: ` it starts with (the note sits beside that field). */
function fieldMessage(err) {
  // A known refusal (no_face, no_good_shots, ...) reads better as explain()'s sentence.
  const known = err.code && !['validation_error', 'conflict', 'not_found'].includes(err.code) && !/^http_/.test(err.code);
  if (!err.message || known) return explain(err);
  let m = err.message;
  if (err.field && m.startsWith(err.field + ': ')) m = m.slice(err.field.length + 2);
  return capital(m);
}

function capital(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/**
 * Runs `promise` (or a function returning one) while `button` shows it is busy and cannot be
 * pressed twice; resolves as the promise does.
 */
export async function busy(button, promise) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.classList.add('is-busy');
  try {
    return await (typeof promise === 'function' ? promise() : promise);
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.classList.remove('is-busy');
  }
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A `<time>` showing how long ago (or until) `iso` is, with the full local time as its title. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return h('span', {}, String(iso));
  return h('time', { datetime: when.toISOString(), title: FULL.format(when) }, relative(when));
}

function relative(when) {
  const s = Math.round((when.getTime() - Date.now()) / 1000);
  const a = Math.abs(s);
  if (a < 45) return RELATIVE.format(s, 'second');
  if (a < 45 * 60) return RELATIVE.format(Math.round(s / 60), 'minute');
  if (a < 22 * 3600) return RELATIVE.format(Math.round(s / 3600), 'hour');
  if (a < 7 * 86400) return RELATIVE.format(Math.round(s / 86400), 'day');
  return FULL.format(when);
}

/** What an empty list shows: what to do next (`action`, a button or link, is optional). */
export function emptyState(text, action) {
  return h('div', { class: 'empty' }, h('p', {}, text), action || null);
}

/** A button that copies `text` to the clipboard (also on plain HTTP, where the Clipboard API is absent). */
export function copyButton(text, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'btn-small' }, label);
  button.addEventListener('click', async () => {
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
      } else {
        const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
        area.value = text;
        document.body.appendChild(area);
        area.select();
        const ok = document.execCommand('copy');
        area.remove();
        if (!ok) throw new Error('copy refused');
      }
      toast('Copied to the clipboard.', 'ok');
    } catch {
      toast('The browser did not allow copying; select the text and copy it by hand.', 'error');
    }
  });
  return button;
}

// Extras the pages share (beyond FRONTEND-11.md's list).

/** A state badge: `kind` ok, warn, err or muted; the text always says the state (not colour alone). */
export function badge(text, kind = 'muted') {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/** 1536 -> "1.5 KB". */
export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** 93784 -> "1 d 2 h". */
export function duration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${m} min`;
  if (m) return `${m} min`;
  return `${s} s`;
}

/** A page's heading row: the title and optional actions at its end. */
export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, title), h('div', { class: 'row' }, actions));
}

/** An error box for a part of a page that could not load, with a retry button when given. */
export function errorBox(err, retry) {
  return h('div', { class: 'error-box', role: 'alert' }, h('p', {}, explain(err)),
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}

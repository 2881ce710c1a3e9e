// Cameras: each camera's state and why, adding one (a device, a network stream, a file or the
// test pattern), start, stop, delete, a live view, and enrolling a person from what it sees.

import { api, explain, ApiError } from '../api.js';
import { h, pageHeader, badge, busy, toast, confirmDialog, showFieldErrors, emptyState, errorBox, time } from '../ui.js';
import { openLive } from '../live.js';
import { addForm } from './cameras-add.js';

const EVERY_MS = 3000;

const STATE_KIND = {
  running: 'ok',
  reconnecting: 'warn',
  flapping: 'warn',
  stopped: 'muted',
  ended: 'muted',
  error: 'err',
  source_lost: 'err',
  refused: 'err',
};

/** Why a camera is in its state, in a sentence, or null when there is nothing to say. */
function reasonOf(c) {
  switch (c.state) {
    case 'refused': return `Not started: ${c.reason}. Fix it with the API (PUT) or delete it.`;
    case 'reconnecting': return `The source cannot be read: ${c.source_error || 'no answer'}. Retrying.`;
    case 'flapping': return `The source keeps going away (${c.restarts} returns)${c.last_error ? `: ${c.last_error}` : ''}.`;
    case 'error': return `It stopped on an error: ${c.last_error || 'see the log'}.`;
    case 'source_lost': return `The source was lost${c.last_error ? `: ${c.last_error}` : ''}.`;
    case 'ended': return 'The file came to its end.';
    default: return null;
  }
}

function ownerNote(c) {
  if (c.origin === 'config') return 'Defined in the configuration file: change or delete it there.';
  if (c.origin === 'stream') return 'Made by a live stream; it goes when the stream ends.';
  return null;
}

/** One camera's card; `update(status)` refreshes it in place (focus and open forms stay). */
function cameraCard(initial, actions) {
  const id = initial.camera_id;
  const slug = id.replace(/[^A-Za-z0-9_-]/g, '_');
  const state = h('span', {});
  const reason = h('p', { class: 'small' });
  const facts = h('dl', { class: 'kv small' });
  const next = h('p', { class: 'muted small' });
  const toggle = h('button', { type: 'button' }, 'Start');
  const liveButton = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': `live-${slug}` }, 'Live view');
  const enrolButton = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': `enrol-${slug}` },
    'Enrol from this camera');
  const remove = h('button', { type: 'button', class: 'btn-danger' }, 'Delete');
  const liveArea = h('div', { id: `live-${slug}`, class: 'live-area' });
  const enrolArea = h('div', { id: `enrol-${slug}` });
  const note = ownerNote(initial);
  const card = h('section', { class: 'card camera', 'aria-labelledby': `cam-${slug}` },
    h('div', { class: 'card-head' }, h('h2', { id: `cam-${slug}` }, id), state),
    reason, facts, next,
    note ? h('p', { class: 'muted small' }, note) : null,
    h('div', { class: 'row' }, toggle, liveButton, enrolButton, initial.origin === 'api' ? remove : null),
    liveArea, enrolArea);
  let current = initial;

  function update(c) {
    current = c;
    state.replaceChildren(badge(c.state.replace('_', ' '), STATE_KIND[c.state] || 'muted'));
    const why = reasonOf(c);
    reason.textContent = why || '';
    reason.hidden = !why;
    facts.replaceChildren(...[
      h('dt', {}, 'Source'), h('dd', { class: 'break' }, h('code', {}, c.source)),
      h('dt', {}, 'Analyses'), h('dd', {}, `up to ${c.fps} frames a second`),
      h('dt', {}, 'Frames analysed'), h('dd', {}, `${c.frames_analysed} (dropped ${c.frames_dropped})`),
      h('dt', {}, 'Faces embedded'), h('dd', {}, c.views_refused
        ? `${c.faces_embedded} (${c.views_refused} views too poor to use)` : String(c.faces_embedded)),
      h('dt', {}, 'Events recorded'), h('dd', {}, String(c.events_recorded)),
      ...(c.restarts ? [h('dt', {}, 'Restarts'), h('dd', {}, String(c.restarts))] : [])]);
    next.replaceChildren(...(c.next_retry_at ? ['Next try ', time(c.next_retry_at), '.'] : []));
    next.hidden = !c.next_retry_at;
    toggle.textContent = c.running ? 'Stop' : 'Start';
    toggle.disabled = c.state === 'refused';
  }

  toggle.addEventListener('click', () => actions.toggle(current, toggle, update));
  remove.addEventListener('click', () => actions.remove(current, remove));
  liveButton.addEventListener('click', () => actions.live(current, liveButton, liveArea));
  enrolButton.addEventListener('click', () => actions.enrol(current, enrolButton, enrolArea));
  update(initial);
  return { card, update };
}

/** The enrol-from-camera form; the request runs as long as the camera looks for good shots. */
function enrolForm(camera, done) {
  const slug = camera.camera_id.replace(/[^A-Za-z0-9_-]/g, '_');
  const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Take the shots');
  const progress = h('div', { class: 'progress', hidden: true, role: 'status' });
  const form = h('form', { class: 'form card-inset', novalidate: true },
    h('p', { class: 'small' }, 'The person stands alone in front of the camera, facing it. The best shots with one clear face are enrolled.'),
    h('div', { class: 'form-inline' },
      h('div', { class: 'field grow' }, h('label', { for: `en-name-${slug}` }, 'Name'),
        h('input', { id: `en-name-${slug}`, name: 'name', required: true, maxlength: '128', autocomplete: 'off' })),
      h('div', { class: 'field' }, h('label', { for: `en-shots-${slug}` }, 'Shots'),
        h('input', { id: `en-shots-${slug}`, name: 'shots', type: 'number', min: '1', max: '10', value: '5', inputmode: 'numeric' })),
      h('div', { class: 'field' }, h('label', { for: `en-time-${slug}` }, 'Look for up to (s)'),
        h('input', { id: `en-time-${slug}`, name: 'timeout_s', type: 'number', min: '1', max: '60', value: '20', inputmode: 'numeric' }))),
    h('div', { class: 'row' }, submit, h('button', { type: 'button', onclick: () => done(null) }, 'Cancel')),
    progress);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showFieldErrors(form, null);
    const name = form.elements.name.value.trim();
    if (!name) {
      showFieldErrors(form, new ApiError(0, 'validation_error', 'enter the name of the person in front of the camera', 'name'));
      return;
    }
    const shots = Number(form.elements.shots.value) || 5;
    const timeout = Number(form.elements.timeout_s.value) || 20;
    const bar = h('div', { class: 'bar indeterminate', 'aria-hidden': 'true' }, h('span', {}));
    const words = h('span', {});
    progress.replaceChildren(words, bar);
    progress.hidden = false;
    const began = Date.now();
    const tick = () => {
      const left = Math.max(0, timeout - Math.round((Date.now() - began) / 1000));
      words.textContent = `Looking for ${shots} good shot${shots === 1 ? '' : 's'} of ${name}… (up to ${left} s more)`;
    };
    tick();
    const timer = setInterval(tick, 1000);
    try {
      const answer = await busy(submit, api('POST', `/api/v1/cameras/${encodeURIComponent(camera.camera_id)}/enrol`,
        { name, shots, timeout_s: timeout, metadata: {} }));
      const n = (answer.face_ids || answer.faces || []).length;
      toast(`${name} is enrolled with ${n} photo${n === 1 ? '' : 's'} from ${camera.camera_id}.`, 'ok');
      done(answer);
    } catch (err) {
      showFieldErrors(form, err);
    } finally {
      clearInterval(timer);
      progress.hidden = true;
    }
  });
  return form;
}

/** The live views open on the page: one per camera at most, all closed when the page is left. */
function liveViews() {
  const open = new Map();
  const close = (id) => {
    const live = open.get(id);
    if (!live) return;
    live.close();
    live.button.textContent = 'Live view';
    live.button.setAttribute('aria-expanded', 'false');
    open.delete(id);
  };
  return {
    close,
    closeAll: () => [...open.keys()].forEach(close),
    toggle(c, button, area) {
      if (open.has(c.camera_id)) {
        close(c.camera_id);
        area.replaceChildren();
        return;
      }
      button.textContent = 'Close live view';
      button.setAttribute('aria-expanded', 'true');
      const ended = () => {
        open.delete(c.camera_id);
        button.textContent = 'Live view';
        button.setAttribute('aria-expanded', 'false');
      };
      open.set(c.camera_id, { close: openLive(c.camera_id, area, ended), button });
    },
  };
}

/** What a camera card's buttons do; `refresh()` redraws the list after a change. */
function cameraActions(lives, refresh) {
  const path = (c) => `/api/v1/cameras/${encodeURIComponent(c.camera_id)}`;
  return {
    async toggle(c, button, update) {
      try {
        const status = await busy(button, api('POST', `${path(c)}/${c.running ? 'stop' : 'start'}`));
        update(status);
        toast(`${c.camera_id} ${status.running ? 'started' : 'stopped'}.`, 'ok');
      } catch (e) {
        toast(explain(e), 'error');
      }
    },
    async remove(c, button) {
      const yes = await confirmDialog(`Delete the camera ${c.camera_id}? Its events stay; it is not started again.`,
        { confirm: 'Delete camera' });
      if (!yes) return;
      try {
        await busy(button, api('DELETE', path(c)));
        toast(`${c.camera_id} deleted.`, 'ok');
        lives.close(c.camera_id);
        await refresh();
      } catch (e) {
        toast(explain(e), 'error');
      }
    },
    live: (c, button, area) => lives.toggle(c, button, area),
    enrol(c, button, area) {
      if (area.firstChild) {
        area.replaceChildren();
        button.setAttribute('aria-expanded', 'false');
        return;
      }
      button.setAttribute('aria-expanded', 'true');
      const form = enrolForm(c, (answer) => {
        button.setAttribute('aria-expanded', 'false');
        area.replaceChildren(...(answer ? [h('p', { class: 'notice' }, `${answer.name} is enrolled. `,
          h('a', { href: '/people' }, 'See them on the People page'), '.')] : []));
        button.focus();
      });
      area.replaceChildren(form);
      form.elements.name.focus();
    },
  };
}

/** The "Add a camera" button opens and closes the form above the list. */
function addToggle(addButton, addArea, refresh) {
  const closeForm = () => {
    addArea.replaceChildren();
    addButton.setAttribute('aria-expanded', 'false');
  };
  addButton.addEventListener('click', () => {
    if (addArea.firstChild) {
      closeForm();
      return;
    }
    addButton.setAttribute('aria-expanded', 'true');
    addArea.replaceChildren(addForm(async (status) => {
      closeForm();
      toast(`${status.camera_id} added${status.running ? ' and started' : ''}.`, 'ok');
      await refresh();
      addButton.focus();
    }, () => {
      closeForm();
      addButton.focus();
    }));
    addArea.querySelector('input, select').focus();
  });
}

export default {
  title: 'Cameras',
  async render(main) {
    const addButton = h('button', { type: 'button', class: 'btn-primary', 'aria-expanded': 'false', 'aria-controls': 'add-camera' },
      'Add a camera');
    const addArea = h('div', { id: 'add-camera' });
    const list = h('div', { class: 'stack' });
    main.append(pageHeader('Cameras', addButton), addArea, list);
    const cards = new Map();
    const lives = liveViews();
    const actions = cameraActions(lives, () => refresh());
    let timer = null;
    let stopped = false;

    /** Updates the cards in place: open forms, live views and the keyboard's focus stay. */
    async function refresh() {
      let cameras;
      try {
        cameras = await api('GET', '/api/v1/cameras');
      } catch (e) {
        if (!cards.size) list.replaceChildren(errorBox(e, refresh));
        return;
      }
      if (stopped) return;
      const ids = new Set(cameras.map((c) => c.camera_id));
      for (const [id, card] of cards) {
        if (ids.has(id)) continue;
        lives.close(id);
        card.card.remove();
        cards.delete(id);
      }
      if (!cameras.length) {
        list.replaceChildren(emptyState('No camera yet. Add one: a camera plugged into the device, a network camera (RTSP), a video file, or the test pattern.'));
        return;
      }
      if (!cards.size) list.replaceChildren();
      for (const c of cameras) {
        if (cards.has(c.camera_id)) {
          cards.get(c.camera_id).update(c);
        } else {
          cards.set(c.camera_id, cameraCard(c, actions));
          list.append(cards.get(c.camera_id).card);
        }
      }
    }

    addToggle(addButton, addArea, refresh);
    await refresh();
    const loop = async () => {
      if (stopped) return;
      if (!document.hidden) await refresh();
      if (!stopped) timer = setTimeout(loop, EVERY_MS);
    };
    timer = setTimeout(loop, EVERY_MS);
    return () => {
      stopped = true;
      clearTimeout(timer);
      lives.closeAll();
    };
  },
};

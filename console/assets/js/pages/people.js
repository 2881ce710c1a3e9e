// The People page: everyone the appliance recognises, one card per person with a thumbnail per
// enrolment photo; enrolment from photos (one upload per photo, so each says how it went and a
// bad photo does not sink the good ones) or from a short video; rename, add and remove photos,
// delete, search.
import { api, explain } from '../api.js';
import { h, toast, confirmDialog, showFieldErrors, busy, time, emptyState, pageHeader } from '../ui.js';

const PHOTO_TYPES = 'image/jpeg,image/png';
const VIDEO_TYPES = '.y4m,.mjpeg,.mjpg,video/x-motion-jpeg';

/** The gallery grouped by name, names in alphabetical order, photos oldest first. */
async function loadPeople() {
  const { faces } = await api('GET', '/api/v1/faces?limit=10000');
  const byName = new Map();
  for (const f of faces) {
    if (!byName.has(f.name)) byName.set(f.name, []);
    byName.get(f.name).push(f);
  }
  for (const list of byName.values()) list.sort((a, b) => a.created_at.localeCompare(b.created_at));
  return [...byName.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, photos]) => ({ name, photos }));
}

const enc = encodeURIComponent;
let nextId = 0;
const uid = (prefix) => `${prefix}-${++nextId}`;

/** The form fields FaceCV's enrolment routes take, from a form's inputs. */
function personForm(name, form) {
  const data = new FormData();
  data.append('name', name);
  for (const key of ['department', 'employee_id']) {
    const v = form?.elements[key]?.value.trim();
    if (v) data.append(key, v);
  }
  return data;
}

/**
 * Enrols `files` under `name` one photo at a time, each row of `list` saying how its photo went.
 * Returns how many were enrolled.
 */
async function enrolPhotos(name, files, list, form) {
  const rows = [...files].map((file) => {
    const url = URL.createObjectURL(file);
    const state = h('span', { class: 'photo-state' }, 'Waiting');
    const preview = h('img', { src: url, alt: '', width: 40, height: 40, class: 'thumb upload-thumb' });
    // A file that is not a picture has no preview; the appliance says why it is refused.
    preview.addEventListener('error', () => preview.replaceWith(h('span', { class: 'upload-none', 'aria-hidden': 'true' })), { once: true });
    const row = h('li', { class: 'upload' },
      preview,
      h('span', { class: 'upload-name' }, file.name),
      state);
    list.append(row);
    return { file, url, state, row };
  });
  const overall = h('progress', { max: rows.length, value: 0, 'aria-label': `Photos of ${name} sent` });
  list.before(overall);
  let done = 0;
  let enrolled = 0;
  for (const r of rows) {
    r.state.textContent = 'Sending';
    r.row.setAttribute('aria-busy', 'true');
    const data = personForm(name, form);
    data.append('file', r.file, r.file.name);
    try {
      await api('POST', '/api/v1/faces', data);
      r.state.textContent = 'Enrolled';
      r.row.classList.add('ok');
      enrolled++;
    } catch (err) {
      r.state.textContent = `Refused: ${explain(err)}`;
      r.row.classList.add('error');
    }
    r.row.removeAttribute('aria-busy');
    URL.revokeObjectURL(r.url);
    overall.value = ++done;
  }
  return enrolled;
}

/** A labelled text input in a `.field`. */
function textField(name, label, attrs = {}) {
  const id = uid(name);
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name, type: 'text', ...attrs }));
}

/** The enrolment form's controls: who, and from photos or a video (one of the two boxes shown). */
function enrolControls() {
  const photosId = uid('photos');
  const photos = h('input', { type: 'file', name: 'photos', id: photosId, accept: PHOTO_TYPES, multiple: true });
  const photosBox = h('div', { class: 'field' },
    h('label', { for: photosId }, 'Photos ', h('span', { class: 'hint' }, '(JPEG or PNG, one face each; several at once)')),
    photos);
  const videoId = uid('video');
  const countId = uid('count');
  const video = h('input', { type: 'file', name: 'file', id: videoId, accept: VIDEO_TYPES });
  const count = h('input', { type: 'number', name: 'count', id: countId, min: 1, max: 20, step: 1, value: 5, inputmode: 'numeric' });
  const videoBox = h('div', { class: 'field-group', hidden: true },
    h('div', { class: 'field' },
      h('label', { for: videoId }, 'Video ', h('span', { class: 'hint' }, '(y4m or MJPEG, a few seconds of this person alone)')),
      video),
    h('div', { class: 'field' }, h('label', { for: countId }, 'Frames to enrol'), count));
  const radios = ['photos', 'video'].map((v) => {
    const id = uid('from');
    return h('span', { class: 'check' },
      h('input', { type: 'radio', name: 'from', value: v, id, checked: v === 'photos' }),
      h('label', { for: id }, v === 'photos' ? 'From photos' : 'From a video'));
  });
  const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Enrol');
  const status = h('div', { class: 'enrol-status', role: 'status' });
  const progress = h('ol', { class: 'upload-list' });
  const form = h('form', { class: 'form enrol-form', novalidate: true },
    textField('name', 'Name', { required: true, maxlength: 128, autocomplete: 'off' }),
    h('div', { class: 'field-row' },
      textField('department', 'Department (optional)'),
      textField('employee_id', 'Employee id (optional)')),
    h('fieldset', {}, h('legend', {}, 'Enrol'), h('div', { class: 'segmented' }, ...radios)),
    photosBox,
    videoBox,
    h('div', { class: 'row' }, submit),
    status,
    progress);
  form.addEventListener('change', (e) => {
    if (e.target.name !== 'from') return;
    const fromVideo = form.elements.from.value === 'video';
    photosBox.hidden = fromVideo;
    videoBox.hidden = !fromVideo;
  });
  return { form, photos, video, count, submit, status, progress };
}

/** Sends a video to the video route; the status line follows it (the analysis takes a while). */
async function enrolVideo(c, name, file, onEnrolled) {
  const data = personForm(name, c.form);
  data.append('count', c.count.value || '5');
  data.append('file', file, file.name);
  const bar = h('progress', { 'aria-label': `Analysing the video of ${name}` });
  c.status.replaceChildren(bar, h('span', {}, ` Uploading and analysing ${file.name}: the best frames are picked…`));
  try {
    const r = await api('POST', '/api/v1/faces/video', data);
    const n = r.face_ids.length;
    c.status.textContent = `${name}: ${n} frame${n === 1 ? '' : 's'} enrolled from the video (${r.video.usable} usable of ${r.video.sampled} analysed).`;
    toast(`${name} enrolled from a video`, 'ok');
    c.video.value = '';
    await onEnrolled();
  } catch (err) {
    c.status.textContent = '';
    if (err.field === 'file' || err.field === 'name' || err.field === 'count') showFieldErrors(c.form, err);
    else c.status.textContent = explain(err);
  }
}

/** Checks the form, then enrols from its photos (one by one) or its video. */
async function enrol(c, onEnrolled) {
  const { form, status, progress } = c;
  const name = form.elements.name.value.trim();
  status.textContent = '';
  progress.replaceChildren();
  form.querySelector('progress')?.remove();
  const fromVideo = form.elements.from.value === 'video';
  if (!name) return showFieldErrors(form, { field: 'name', message: 'Give the person a name.' });
  const files = fromVideo ? c.video.files : c.photos.files;
  if (!files.length) {
    return showFieldErrors(form, {
      field: fromVideo ? 'file' : 'photos',
      message: fromVideo ? 'Choose a video.' : 'Choose one or more photos.',
    });
  }
  showFieldErrors(form, null);
  if (fromVideo) return enrolVideo(c, name, files[0], onEnrolled);
  const n = await enrolPhotos(name, files, progress, form);
  status.textContent = n === files.length
    ? `${name}: ${n} photo${n === 1 ? '' : 's'} enrolled.`
    : `${name}: ${n} of ${files.length} photos enrolled; the others are listed with the reason.`;
  if (n) {
    toast(`${name} enrolled from ${n} photo${n === 1 ? '' : 's'}`, 'ok');
    c.photos.value = '';
    await onEnrolled();
  }
}

/** The enrolment panel: who, and from photos or a video. `onEnrolled` reloads the list. */
function enrolPanel(onEnrolled) {
  const headingId = uid('enrol');
  const c = enrolControls();
  c.form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(c.submit, enrol(c, onEnrolled));
  });
  return h('section', { class: 'card enrol-panel', 'aria-labelledby': headingId, hidden: true },
    h('h2', { id: headingId }, 'Enrol a person'),
    h('p', { class: 'hint' },
      'Photos: each must show this one person clearly, facing the camera. A video: a few seconds of them alone; the sharpest, clearest frames are enrolled.'),
    c.form);
}

/** One thumbnail: the aligned face crop, or a placeholder for a face enrolled before images were kept. */
function thumb(face, i, name, onRemove) {
  const label = `Photo ${i + 1} of ${name}`;
  const picture = face.has_image
    ? h('a', { href: `/api/v1/faces/${enc(face.id)}/photo.jpg`, target: '_blank', rel: 'noopener', title: 'The photo this face came from' },
      h('img', { src: `/api/v1/faces/${enc(face.id)}/crop.jpg`, alt: label, width: 96, height: 96, loading: 'lazy', class: 'thumb' }))
    : h('div', { class: 'thumb-placeholder', role: 'img', 'aria-label': `${label}: no image kept (enrolled before the appliance kept photos)` }, 'No image');
  const remove = h('button', { type: 'button', class: 'btn-small photo-remove', 'aria-label': `Remove photo ${i + 1} of ${name}`, title: 'Remove this photo' }, 'Remove');
  remove.addEventListener('click', () => onRemove(face, i, remove));
  return h('li', { class: 'photo' }, h('figure', {}, picture, h('figcaption', { class: 'small muted' }, time(face.created_at))), remove);
}

/** The rename form, in place of the facts under the card's heading (which stays: it names the card). */
function startRename(name, header, rename, reload) {
  const id = uid('rename');
  const input = h('input', { id, name: 'name', type: 'text', value: name, required: true, maxlength: 128, autocomplete: 'off' });
  const save = h('button', { type: 'submit', class: 'btn-primary' }, 'Save');
  const cancel = h('button', { type: 'button' }, 'Cancel');
  const form = h('form', { class: 'form-inline rename-form', novalidate: true },
    h('div', { class: 'field grow' }, h('label', { for: id }, `New name for ${name}`), input),
    h('div', { class: 'row' }, save, cancel));
  const factsLine = header.querySelector('p');
  cancel.addEventListener('click', () => { form.remove(); factsLine.hidden = false; rename.hidden = false; rename.focus(); });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const to = input.value.trim();
    if (!to || to === name) return showFieldErrors(form, { field: 'name', message: to ? 'That is already their name.' : 'Give a name.' });
    busy(save, api('PUT', `/api/v1/people/${enc(name)}`, { name: to }).then(() => {
      toast(`${name} is now ${to}`, 'ok');
      return reload();
    }).catch((err) => {
      showFieldErrors(form, { ...err, field: 'name', message: err.status === 409 ? `${to} is already enrolled: pick another name, or delete one of them.` : explain(err) });
    }));
  });
  factsLine.hidden = true;
  rename.hidden = true;
  header.append(form);
  input.focus();
  input.select();
}

/** A person's card, with its own actions. `reload` redraws the list from the appliance. */
function personCard(person, reload) {
  const { name, photos } = person;
  const headingId = uid('person');
  const meta = photos[0].metadata || {};
  const facts = [`${photos.length} photo${photos.length === 1 ? '' : 's'}`, meta.department, meta.employee_id && `id ${meta.employee_id}`]
    .filter(Boolean).join(' · ');
  const heading = h('h3', { id: headingId }, name);
  const header = h('div', { class: 'person-head' }, heading, h('p', { class: 'muted small' }, facts));
  const status = h('p', { class: 'person-status', role: 'status' });

  const removePhoto = async (face, i, button) => {
    const last = photos.length === 1;
    const ok = await confirmDialog(last
      ? `Remove the only photo of ${name}? They will no longer be enrolled or recognised.`
      : `Remove photo ${i + 1} of ${name}? Their other ${photos.length - 1} photo${photos.length === 2 ? '' : 's'} stay.`, { confirm: 'Remove' });
    if (!ok) return;
    await busy(button, api('DELETE', `/api/v1/faces/${enc(face.id)}`).then(() => {
      toast(`Photo ${i + 1} of ${name} removed`, 'ok');
      return reload();
    }).catch((err) => toast(explain(err), 'error')));
  };

  const picker = h('input', { type: 'file', accept: PHOTO_TYPES, multiple: true, class: 'offscreen', 'aria-label': `Add photos of ${name}`, tabindex: -1 });
  const uploads = h('ol', { class: 'upload-list' });
  const add = h('button', { type: 'button' }, 'Add photos');
  add.addEventListener('click', () => picker.click());
  picker.addEventListener('change', async () => {
    if (!picker.files.length) return;
    uploads.replaceChildren();
    const n = await busy(add, enrolPhotos(name, picker.files, uploads, null));
    picker.value = '';
    if (n) {
      toast(`${n} photo${n === 1 ? '' : 's'} added to ${name}`, 'ok');
      await reload();
    }
  });

  const rename = h('button', { type: 'button' }, 'Rename');
  rename.addEventListener('click', () => startRename(name, header, rename, reload));

  const del = h('button', { type: 'button', class: 'btn-danger' }, 'Delete');
  del.addEventListener('click', async () => {
    const ok = await confirmDialog(`Delete ${name} and their ${photos.length} photo${photos.length === 1 ? '' : 's'}? They will no longer be recognised; events already recorded keep their name.`, { confirm: 'Delete' });
    if (!ok) return;
    await busy(del, api('DELETE', `/api/v1/faces/by-name/${enc(name)}`).then(() => {
      toast(`${name} deleted`, 'ok');
      return reload();
    }).catch((err) => { status.textContent = explain(err); }));
  });

  return h('article', { class: 'card person', 'aria-labelledby': headingId, 'data-name': name.toLowerCase() },
    header,
    h('ul', { class: 'photos' }, ...photos.map((f, i) => thumb(f, i, name, removePhoto))),
    h('div', { class: 'row' }, add, rename, del, picker),
    uploads,
    status);
}

export default {
  title: 'People',
  async render(main) {
    const listId = uid('list');
    const search = h('input', { type: 'search', 'aria-label': 'Search people', placeholder: 'Search people', autocomplete: 'off', class: 'people-search' });
    const summary = h('p', { class: 'muted', role: 'status' });
    const list = h('div', { class: 'people-list', id: listId });
    const noMatch = h('div', { class: 'empty', hidden: true }, h('p', {}, 'No one matches.'));
    let people = [];

    const filter = () => {
      const q = search.value.trim().toLowerCase();
      let shown = 0;
      for (const el of list.children) {
        const hit = !q || el.dataset.search.includes(q);
        el.hidden = !hit;
        if (hit) shown++;
      }
      noMatch.hidden = !(people.length && shown === 0);
    };
    const reload = async () => {
      try {
        people = await loadPeople();
      } catch (err) {
        list.replaceChildren(emptyState(`The gallery could not be read: ${explain(err)}`));
        return;
      }
      const photos = people.reduce((n, p) => n + p.photos.length, 0);
      summary.textContent = `${people.length} ${people.length === 1 ? 'person' : 'people'}, ${photos} photo${photos === 1 ? '' : 's'}`;
      if (!people.length) {
        list.replaceChildren(emptyState('No one is enrolled yet. Enrol a person from a few photos or a short video; the cameras recognise them from the next frame.'));
        panel.hidden = false;
        toggle.setAttribute('aria-expanded', 'true');
        return;
      }
      list.replaceChildren(...people.map((p) => {
        const card = personCard(p, reload);
        const m = p.photos[0].metadata || {};
        card.dataset.search = [p.name, m.department, m.employee_id].filter(Boolean).join(' ').toLowerCase();
        return card;
      }));
      filter();
    };

    const panel = enrolPanel(reload);
    const toggle = h('button', { type: 'button', class: 'btn-primary', 'aria-expanded': 'false' }, 'Enrol a person');
    panel.id = uid('panel');
    toggle.setAttribute('aria-controls', panel.id);
    toggle.addEventListener('click', () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden) panel.querySelector('input[name="name"]').focus();
    });
    search.addEventListener('input', filter);

    main.replaceChildren(
      pageHeader('People', search, toggle),
      summary,
      panel,
      h('section', { 'aria-label': 'Everyone enrolled' }, list, noMatch),
    );
    main.setAttribute('aria-busy', 'true');
    await reload();
    main.removeAttribute('aria-busy');
  },
};

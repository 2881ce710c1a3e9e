// The Events page's corrections: naming a stranger from its snapshot ("This is …"), and on a
// recognition, showing which enrolled photo matched, removing it, or enrolling the face under
// the right name ("Wrong person?").

import { api, explain, ApiError } from '../api.js';
import { h, busy, toast, confirmDialog, showFieldErrors } from '../ui.js';

/** A name form that enrols the event's face: `POST /api/v1/events/{id}/enrol`. */
function enrolAs(event, label, onDone) {
  const id = `enrol-${event.id}`;
  const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Enrol');
  const form = h('form', { class: 'form-inline', novalidate: true },
    h('div', { class: 'field grow' }, h('label', { for: id }, label),
      h('input', { id, name: 'name', required: true, maxlength: '128', autocomplete: 'off', placeholder: 'Full name' })),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showFieldErrors(form, null);
    const name = form.elements.name.value.trim();
    if (!name) {
      showFieldErrors(form, new ApiError(0, 'validation_error', 'enter the name of this person', 'name'));
      return;
    }
    try {
      await busy(submit, api('POST', `/api/v1/events/${encodeURIComponent(event.id)}/enrol`, { name, metadata: {} }));
      toast(`This face is now enrolled as ${name}; the cameras recognise it from the next frame.`, 'ok');
      form.replaceWith(h('p', { class: 'notice' }, `Enrolled as ${name}. `, h('a', { href: '/people' }, 'See People'), '.'));
      if (onDone) onDone(name);
    } catch (err) {
      showFieldErrors(form, err);
    }
  });
  return form;
}

/** A button that opens (`fill(area)`) and closes an area below it, saying which with aria-expanded. */
function disclosure(label, fill) {
  const area = h('div', { class: 'event-fix' });
  const button = h('button', { type: 'button', 'aria-expanded': 'false' }, label);
  button.addEventListener('click', () => {
    const open = !area.firstChild;
    button.setAttribute('aria-expanded', String(open));
    if (open) fill(area);
    else area.replaceChildren();
  });
  return h('div', { class: 'event-actions' }, button, area);
}

/** "This is …" under a stranger alert. */
export function strangerActions(event) {
  return disclosure('This is …', (area) => {
    area.replaceChildren(enrolAs(event, 'Who is this? Their face in the snapshot is enrolled under this name.'));
    area.querySelector('input').focus();
  });
}

/** The matched enrolled photo of one recognised face, with "remove that photo". */
function matchedPhoto(face) {
  const box = h('figure', { class: 'match' });
  const img = h('img', {
    class: 'thumb', loading: 'lazy', width: '96', height: '96',
    src: `/api/v1/faces/${encodeURIComponent(face.face_id)}/crop.jpg`,
    alt: `The enrolled photo of ${face.name} that matched`,
  });
  img.addEventListener('error', () => img.replaceWith(h('span', { class: 'thumb thumb-none' }, 'No photo kept')), { once: true });
  const remove = h('button', { type: 'button', class: 'btn-danger btn-small' }, 'Remove that photo');
  remove.addEventListener('click', async () => {
    const yes = await confirmDialog(`Remove this photo from ${face.name}'s enrolment? ${face.name} stays enrolled with their other photos.`,
      { confirm: 'Remove photo' });
    if (!yes) return;
    try {
      await busy(remove, api('DELETE', `/api/v1/faces/${encodeURIComponent(face.face_id)}`));
      toast(`The photo is removed from ${face.name}.`, 'ok');
      box.replaceChildren(h('p', { class: 'small' }, `Removed from ${face.name}.`));
    } catch (err) {
      toast(explain(err), 'error');
    }
  });
  box.append(img, h('figcaption', { class: 'small' }, `Matched ${face.name} (${Math.round(face.confidence * 100)} %)`), remove);
  return box;
}

/** "Wrong person?" under a recognition. */
export function recognitionActions(event) {
  const faces = (event.data && event.data.recognized_faces) || [];
  return disclosure('Wrong person?', (area) => {
    const matched = faces.filter((f) => f.face_id);
    area.replaceChildren(
      matched.length
        ? h('div', {}, h('p', { class: 'small' }, 'The enrolled photo that matched. If it is of someone else, or a poor picture, remove it:'),
          h('div', { class: 'row matches' }, matched.map(matchedPhoto)))
        : h('p', { class: 'small muted' }, 'This event does not say which enrolled photo matched (it was recorded before the appliance kept that).'),
      enrolAs(event, 'Or enrol the face in the snapshot under the right name:'));
  });
}

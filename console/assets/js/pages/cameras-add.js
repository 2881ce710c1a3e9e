// The Cameras page's "Add a camera" form: a V4L2 device the appliance lists, a network stream,
// a file below api.media_dir, or the test pattern; sent as `POST /api/v1/cameras`
// `{camera_id, source, fps, autostart}` (FaceCV's source string, see README "Cameras and faces").

import { api, ApiError } from '../api.js';
import { h, busy, showFieldErrors } from '../ui.js';

const KINDS = [
  ['device', 'A camera on this device'],
  ['url', 'A network camera (RTSP or HTTP)'],
  ['file', 'A video file or picture folder'],
  ['synthetic', 'The test pattern'],
];

/** The device chooser: what `GET /api/v1/cameras/devices` lists, or a path to type. */
function devicePicker() {
  const wrap = h('div', { class: 'field' }, h('p', { class: 'muted small' }, 'Looking for cameras…'));
  const load = async () => {
    let devices = null;
    try {
      devices = (await api('GET', '/api/v1/cameras/devices')).devices;
    } catch {
      devices = null; // an appliance that cannot list them: the path is typed
    }
    if (devices && devices.length) {
      const hint = h('p', { class: 'hint', id: 'device-hint' });
      const select = h('select', { id: 'source-device', name: 'device', 'aria-describedby': 'device-hint' },
        devices.map((d) => h('option', { value: d.path }, `${d.name || d.path} (${d.path})`)));
      const describe = () => {
        const d = devices.find((x) => x.path === select.value);
        hint.textContent = d ? [d.driver, d.bus, (d.formats || []).slice(0, 4).join(', ')].filter(Boolean).join(' · ') : '';
      };
      select.addEventListener('change', describe);
      describe();
      wrap.replaceChildren(h('label', { for: 'source-device' }, 'Device'), select, hint);
    } else {
      const again = h('button', { type: 'button', class: 'btn-small' }, 'Look again');
      again.addEventListener('click', () => busy(again, load()));
      wrap.replaceChildren(
        h('label', { for: 'source-device' }, 'Device path'),
        h('input', { id: 'source-device', name: 'device', value: '/dev/video0', autocomplete: 'off', spellcheck: 'false' }),
        h('p', { class: 'hint' }, devices
          ? 'No camera is plugged in (no /dev/video device answers). Plug one in, then look again, or type its path.'
          : 'This appliance cannot list its cameras; type the device path.', ' ', again));
    }
  };
  load();
  return wrap;
}

/** Sends the form as `POST /api/v1/cameras`; the API's refusals go beside the input they concern. */
async function submit(form, k, button, onAdded) {
  showFieldErrors(form, null);
  const value = {
    device: () => (form.elements.device ? form.elements.device.value.trim() : ''),
    url: () => form.elements.url.value.trim(),
    file: () => form.elements.file.value.trim(),
    synthetic: () => 'synthetic',
  }[k]();
  const inputName = { device: 'device', url: 'url', file: 'file', synthetic: 'camera_id' }[k];
  const body = {
    camera_id: form.elements.camera_id.value.trim(),
    source: value,
    fps: Number(form.elements.fps.value),
    autostart: form.elements.autostart.checked,
  };
  if (!body.camera_id) {
    showFieldErrors(form, new ApiError(0, 'validation_error', 'give the camera a name', 'camera_id'));
    return;
  }
  if (!value) {
    showFieldErrors(form, new ApiError(0, 'validation_error', 'say where the pictures come from', inputName));
    return;
  }
  try {
    onAdded(await busy(button, api('POST', '/api/v1/cameras', body)));
  } catch (err) {
    // The API names `source` (or `spec`); the form's input for it depends on the kind.
    if (err.field === 'source' || err.field === 'spec') err.field = inputName;
    if (err.code === 'conflict') {
      err.field = 'camera_id';
      err.message = 'a camera of this name exists already; choose another name';
    }
    if (!err.field && ['outside_media_dir', 'media_dir_unset', 'device_not_allowed', 'pipe_needs_config'].includes(err.code)) {
      err.field = inputName;
    }
    showFieldErrors(form, err);
  }
}

/** `onAdded(status)` after the camera is added, `onCancel()` when the form is closed. */
export function addForm(onAdded, onCancel) {
  const radios = KINDS.map(([value, label], i) => h('label', { class: 'check' },
    h('input', { type: 'radio', name: 'kind', value, checked: i === 0 }), label));
  const parts = {
    device: devicePicker(),
    url: h('div', { class: 'field' },
      h('label', { for: 'source-url' }, 'Stream URL'),
      h('input', { id: 'source-url', name: 'url', type: 'url', placeholder: 'rtsp://user:password@192.168.1.20:554/stream1', autocomplete: 'off', spellcheck: 'false' }),
      h('p', { class: 'hint' }, 'rtsp://, rtsps://, http:// or https://; read through ffmpeg on the appliance.')),
    file: h('div', { class: 'field' },
      h('label', { for: 'source-file' }, 'File or folder'),
      h('input', { id: 'source-file', name: 'file', placeholder: 'door.y4m', autocomplete: 'off', spellcheck: 'false' }),
      h('p', { class: 'hint' }, 'A path below the folder api.media_dir names: y4m or MJPEG video, or a folder of pictures.')),
    synthetic: h('p', { class: 'notice' }, 'A moving test pattern without faces: it shows the camera pipeline runs, nothing more.'),
  };
  const source = h('div', {}, parts.device);
  const button = h('button', { type: 'submit', class: 'btn-primary' }, 'Add camera');
  const form = h('form', { class: 'form card', novalidate: true, 'aria-labelledby': 'add-title' },
    h('h2', { id: 'add-title' }, 'Add a camera'),
    h('div', { class: 'field' },
      h('label', { for: 'camera_id' }, 'Name'),
      h('input', { id: 'camera_id', name: 'camera_id', required: true, maxlength: '64', pattern: '[A-Za-z0-9_.\\-]+', placeholder: 'front_door', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'camera-id-hint' }),
      h('p', { class: 'hint', id: 'camera-id-hint' }, 'Letters, digits, _ - and . (it appears in events, webhooks and MQTT topics).')),
    h('fieldset', {}, h('legend', {}, 'Source'), h('div', { class: 'segmented' }, radios), source),
    h('div', { class: 'form-inline' },
      h('div', { class: 'field' },
        h('label', { for: 'fps' }, 'Frames analysed a second'),
        h('input', { id: 'fps', name: 'fps', type: 'number', min: '0.1', max: '60', step: '0.1', value: '10', inputmode: 'decimal' })),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'autostart', checked: true }),
        'Start it now and whenever the appliance starts')),
    h('div', { class: 'row' }, button, h('button', { type: 'button', onclick: onCancel }, 'Cancel')));

  const kind = () => form.elements.kind.value;
  form.addEventListener('change', (e) => {
    if (e.target.name === 'kind') source.replaceChildren(parts[kind()]);
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit(form, kind(), button, onAdded);
  });
  return form;
}

// The MQTT & GPIO page: the MQTT bridge's state, last error and counters, refreshed while the page
// is open; and the GPIO actions the configuration defines. The API reports no GPIO state (nor does
// /health): the page says so rather than guess.
import { api, explain } from '../api.js';
import { h, time, emptyState, badge, pageHeader } from '../ui.js';

const REFRESH_MS = 3000;

/** A definition list of label/value pairs; values may be nodes. */
function facts(pairs) {
  return h('dl', { class: 'kv' }, ...pairs.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

const COUNTERS = [
  ['published', 'Published', 'Events sent to the broker since the appliance started.'],
  ['acknowledged', 'Acknowledged', 'Confirmed by the broker (PUBACK).'],
  ['refused', 'Refused', 'Refused by the broker or too large; logged and passed over.'],
  ['in_flight', 'In flight', 'Sent and not yet acknowledged.'],
  ['backlog', 'Waiting', 'Recorded events the broker has not had yet.'],
  ['dropped', 'Dropped', 'Lost to the store\'s quota before the bridge had them.'],
  ['connects', 'Connects', 'Connections made.'],
  ['connection_losses', 'Connection losses', ''],
  ['commands', 'Commands', 'Camera ON/OFF commands received.'],
];

/** Why the bridge is off, from the configuration in use (`undefined`: it could not be read). */
function offText(mqttConfig) {
  const paused = 'mqtt.enabled = false pauses the bridge. Recorded events wait in the store for it (up to the quota) and go out in order once it is enabled again.';
  const absent = 'Add an [mqtt] section with the broker\'s host (see config/default.toml for every key) and restart the service to publish events, camera switches and Home Assistant discovery.';
  if (mqttConfig === undefined) return `MQTT is off: the configuration has no [mqtt] section, or ${paused} ${absent}`;
  if (mqttConfig && mqttConfig.enabled === false) return `MQTT is off: ${paused}`;
  return `MQTT is off: the configuration has no [mqtt] section. ${absent}`;
}

function mqttView(stats, mqttConfig) {
  if (!stats.enabled) {
    const paused = mqttConfig && mqttConfig.enabled === false;
    return [
      h('div', { class: 'card-head' }, h('h2', { id: 'mqtt-h' }, 'MQTT'), badge(paused ? 'Paused' : 'Off', 'muted')),
      h('p', {}, offText(mqttConfig)),
    ];
  }
  const state = stats.connected
    ? badge('Connected', 'ok')
    : badge('Not connected', 'err');
  return [
    h('div', { class: 'card-head' }, h('h2', { id: 'mqtt-h' }, 'MQTT'), state),
    stats.last_error
      ? h('p', { class: 'error-box' }, h('strong', {}, 'Last error: '), stats.last_error)
      : h('p', { class: 'muted' }, 'No error since the appliance started.'),
    facts([
      ['Broker', h('code', {}, stats.broker)],
      ['Client id', h('code', {}, stats.client_id)],
      ['Topics', h('code', {}, `${stats.base_topic}/…`)],
      ['Connected since', stats.connected_since ? time(stats.connected_since) : ''],
      ['Cursor', `event #${stats.cursor}`],
    ]),
    h('h3', {}, 'Counters'),
    h('dl', { class: 'counts' }, ...COUNTERS.map(([k, label, hint]) =>
      h('div', { title: hint }, h('dt', {}, label), h('dd', {}, String(stats[k] ?? '–'))))),
  ];
}

/** What one configured action does, in words. */
function describe(a) {
  const level = a.active_low ? ', active low' : '';
  switch (a.on) {
    case 'face_recognized':
      return `Pulses pin ${a.pin} for ${a.pulse_ms} ms when ${a.names?.length ? a.names.join(', ') : 'anyone enrolled'} is recognised${level}.`;
    case 'stranger_alert':
      return `Pulses pin ${a.pin} for ${a.pulse_ms} ms on a stranger alert${level}.`;
    case 'input':
      return `Input on pin ${a.pin} starts camera ${a.camera}; stopped again after ${a.idle_secs} s without activity.`;
    default:
      return `${a.on} on pin ${a.pin}.`;
  }
}

function gpioView(system, err) {
  const note = h('p', { class: 'muted small' },
    'The API does not report whether the pins are driven: /health and the API have no GPIO state. A build without the rpi feature, or a machine without /dev/gpiochip0, runs without its actions and says so once in the service\'s log (journalctl -u facecv).');
  if (err) {
    return [h('h2', { id: 'gpio-h' }, 'GPIO actions'), emptyState(`The configuration could not be read: ${explain(err)}`), note];
  }
  const actions = system?.config?.actions || [];
  if (!actions.length) {
    return [h('h2', { id: 'gpio-h' }, 'GPIO actions'),
      h('p', {}, 'No GPIO actions are configured. [[actions]] in the config file drive a door relay, a buzzer or a light, and start a camera from a PIR or a button (see the README\'s "GPIO actions").'),
      note];
  }
  return [
    h('h2', { id: 'gpio-h' }, 'GPIO actions'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('caption', {}, `${actions.length} action${actions.length === 1 ? '' : 's'} in the configuration`),
      h('thead', {}, h('tr', {}, ...['On', 'Pin', 'What it does'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, ...actions.map((a) => h('tr', {},
        h('td', { 'data-label': 'On' }, h('code', {}, a.on)),
        h('td', { 'data-label': 'Pin' }, `GPIO ${a.pin}`),
        h('td', { 'data-label': 'What it does' }, describe(a))))))),
    note,
  ];
}

export default {
  title: 'MQTT & GPIO',
  async render(main) {
    const mqttCard = h('section', { class: 'card', 'aria-labelledby': 'mqtt-h' });
    const gpioCard = h('section', { class: 'card', 'aria-labelledby': 'gpio-h' });
    main.replaceChildren(pageHeader('MQTT & GPIO'), mqttCard, gpioCard);
    main.setAttribute('aria-busy', 'true');

    // The configuration in use says whether MQTT is absent or paused, and which actions exist.
    let system = null;
    let systemErr = null;
    try {
      system = await api('GET', '/api/v1/system');
    } catch (err) {
      systemErr = err;
    }
    const refresh = async () => {
      try {
        const mqttConfig = system ? system.config?.mqtt ?? null : undefined;
        mqttCard.replaceChildren(...mqttView(await api('GET', '/api/v1/mqtt/stats'), mqttConfig));
      } catch (err) {
        mqttCard.replaceChildren(h('h2', { id: 'mqtt-h' }, 'MQTT'), emptyState(`The bridge's state could not be read: ${explain(err)}`));
      }
    };
    await refresh();
    gpioCard.replaceChildren(...gpioView(system, systemErr));
    main.removeAttribute('aria-busy');
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  },
};

// The MQTT & GPIO page: the MQTT bridge's state, last error and counters, and the GPIO actions
// (which claimed their pin, which were left out and why, pulses fired), refreshed while the page
// is open. The configuration in use says what each action does.
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

const GPIO_STATE = {
  running: ['Running', 'ok'],
  degraded: ['Some left out', 'warn'],
  unavailable: ['No GPIO here', 'err'],
  off: ['Off', 'muted'],
};

function gpioView(gpio, system, err) {
  const head = (state) => h('div', { class: 'card-head' }, h('h2', { id: 'gpio-h' }, 'GPIO actions'),
    state ? badge(...(GPIO_STATE[state] || [state, 'muted'])) : null);
  if (err) {
    return [head(null), emptyState(`The GPIO actions' state could not be read: ${explain(err)}`)];
  }
  const configured = system?.config?.actions || [];
  if (gpio.state === 'off') {
    return [head('off'),
      h('p', {}, 'No GPIO actions are configured. [[actions]] in the config file drive a door relay, a buzzer or a light, and start a camera from a PIR or a button (see the README\'s "GPIO actions").')];
  }
  const reason = gpio.reason ? h('p', { class: gpio.state === 'running' ? 'muted' : 'error-box' }, gpio.reason) : null;
  if (gpio.state === 'unavailable') {
    return [head('unavailable'), reason,
      h('p', { class: 'muted small' }, `The appliance records and delivers events without its ${configured.length} configured action${configured.length === 1 ? '' : 's'}: a build with the rpi feature on a board with /dev/gpiochip0 drives them.`)];
  }
  // The report lists the actions in the configuration's order, as the configuration does.
  const rows = gpio.actions.map((a, i) => {
    const c = configured[i] && configured[i].pin === a.pin ? configured[i] : a;
    return h('tr', {},
      h('td', { 'data-label': 'On' }, h('code', {}, a.on)),
      h('td', { 'data-label': 'Pin' }, `GPIO ${a.pin}`),
      h('td', { 'data-label': 'State' }, a.claimed ? badge('Claimed', 'ok') : badge('Left out', 'err'),
        a.error ? h('div', { class: 'small' }, a.error) : null),
      h('td', { 'data-label': 'Pulses' }, a.on === 'input' ? '–' : String(a.fired)),
      h('td', { 'data-label': 'What it does' }, describe(c)));
  });
  return [
    head(gpio.state),
    reason,
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('caption', {}, `${gpio.actions.length} action${gpio.actions.length === 1 ? '' : 's'}; ${gpio.stale_events} event${gpio.stale_events === 1 ? '' : 's'} read too late to fire`),
      h('thead', {}, h('tr', {}, ...['On', 'Pin', 'State', 'Pulses', 'What it does'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, ...rows))),
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
      try {
        gpioCard.replaceChildren(...gpioView(await api('GET', '/api/v1/actions'), system, systemErr));
      } catch (err) {
        gpioCard.replaceChildren(...gpioView(null, system, err));
      }
    };
    await refresh();
    main.removeAttribute('aria-busy');
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  },
};

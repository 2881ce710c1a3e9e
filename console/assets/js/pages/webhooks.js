// The Webhooks page: each webhook with its state and counts; create and edit (webhook-form.js);
// test now (status, latency, error); enable and disable; the signing secret shown once, after a
// create and after a rotation, with a copy button; the delivery log; dead letters and their
// replay, followed until they are delivered or fail again.
import { api, explain } from '../api.js';
import { h, toast, confirmDialog, busy, time, emptyState, copyButton, badge, pageHeader } from '../ui.js';
import { webhookForm, EVENT_TYPES } from './webhook-form.js';

const enc = encodeURIComponent;
const REFRESH_MS = 5000;
let nextId = 0;
const uid = (p) => `whp-${p}-${++nextId}`;
const typeLabel = Object.fromEntries(EVENT_TYPES);

/** The secret, shown this once: receivers need it to check signatures, and it is not shown again. */
function secretPanel(id, secret, why, onDone) {
  const headingId = uid('secret');
  const done = h('button', { type: 'button', class: 'btn-primary' }, 'Done');
  const panel = h('section', { class: 'card secret-panel', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, `Signing secret of ${id}`),
    h('p', {}, `${why} It is shown this once: copy it into your receiver now (its FACECV_WEBHOOK_SECRET). Deliveries carry a Standard Webhooks signature made with it.`),
    h('code', { class: 'secret' }, secret),
    h('div', { class: 'row secret-actions' }, copyButton(secret, 'Copy the secret'), done));
  done.addEventListener('click', () => {
    panel.remove();
    onDone();
  });
  return panel;
}

/** The counters of one webhook, as a definition list updated in place by the page's refresh. */
function countsList() {
  const keys = [
    ['succeeded', 'Delivered'],
    ['failed', 'Failed'],
    ['backlog', 'Waiting'],
    ['dead_letters', 'Dead letters'],
    ['dropped', 'Dropped'],
    ['attempts', 'Requests'],
  ];
  const cells = {};
  const dl = h('dl', { class: 'counts' }, ...keys.flatMap(([k, label]) => {
    cells[k] = h('dd', {}, '–');
    return [h('div', {}, h('dt', {}, label), cells[k])];
  }));
  return {
    dl,
    set(stats) {
      for (const [k] of keys) cells[k].textContent = stats?.[k] ?? '–';
    },
  };
}

function deliveriesTable(id, rows) {
  if (!rows.length) return emptyState('No deliveries yet.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('caption', {}, `Delivery log of ${id}, newest first`),
    h('thead', {}, h('tr', {}, ...['When', 'Events', 'Attempt', 'Result', 'Latency'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows.map((a) => {
      const ok = a.status && a.status >= 200 && a.status < 300;
      const result = a.status ? `HTTP ${a.status}${a.error ? `: ${a.error}` : ''}` : a.error || 'no answer';
      return h('tr', {},
        h('td', { 'data-label': 'When' }, time(a.at)),
        h('td', { 'data-label': 'Events' }, `${a.events} (#${a.first_seq}${a.last_seq !== a.first_seq ? `–${a.last_seq}` : ''})`),
        h('td', { 'data-label': 'Attempt' }, String(a.attempt)),
        h('td', { 'data-label': 'Result' }, badge(ok ? 'Delivered' : 'Failed', ok ? 'ok' : 'err'), ' ', result),
        h('td', { 'data-label': 'Latency' }, `${Math.round(a.latency_ms)} ms`));
    }))));
}

function deadLettersTable(id, rows) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('caption', {}, `Dead letters of ${id}, oldest first`),
    h('thead', {}, h('tr', {}, ...['Failed', 'Events', 'Error', 'Replay'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ...rows.map((d) => h('tr', {},
      h('td', { 'data-label': 'Failed' }, time(d.created_at)),
      h('td', { 'data-label': 'Events' }, `${d.event_count} (${[...new Set(d.events.map((e) => typeLabel[e.event_type] || e.event_type))].join(', ')})`),
      h('td', { 'data-label': 'Error' }, d.error),
      h('td', { 'data-label': 'Replay' }, d.replay_pending ? badge('Pending', 'warn') : '–'))))));
}

/**
 * A drawer under a card: shown by its toggle, filled by `load` each time it opens or refreshes;
 * `after` then runs too (the card's counters, so they agree with what the drawer shows).
 */
function drawer(label, load, after = async () => {}) {
  const body = h('div', { class: 'drawer-body' });
  const panelId = uid('drawer');
  const toggle = h('button', { type: 'button', 'aria-expanded': 'false', 'aria-controls': panelId }, label);
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const panel = h('div', { class: 'drawer', id: panelId, hidden: true }, body, h('div', { class: 'row' }, refresh));
  const fill = async () => {
    try {
      body.replaceChildren(await load());
    } catch (err) {
      body.replaceChildren(emptyState(explain(err)));
    }
  };
  toggle.addEventListener('click', async () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) await busy(toggle, fill().then(after));
  });
  refresh.addEventListener('click', () => busy(refresh, fill().then(after)));
  return { toggle, panel, fill, get open() { return !panel.hidden; } };
}

/** Replays the dead letters and follows them until none is pending. */
async function replay(id, count, status, after) {
  const r = await api('POST', `/api/v1/webhooks/${enc(id)}/replay`, {});
  const total = r.count;
  const bar = h('progress', { max: total, value: 0, 'aria-label': `Dead letters of ${id} replayed` });
  const text = h('span', {}, ` Replaying ${total} dead letter${total === 1 ? '' : 's'}…`);
  status.replaceChildren(bar, text);
  const deadline = Date.now() + 120000;
  for (;;) {
    await new Promise((res) => setTimeout(res, 1000));
    const { dead_letters: left } = await api('GET', `/api/v1/webhooks/${enc(id)}/dead_letters?limit=1000`);
    const pending = left.filter((d) => d.replay_pending).length;
    bar.value = total - pending;
    text.textContent = ` ${total - pending} of ${total} replayed`;
    if (!pending) {
      const failed = left.length;
      status.textContent = failed
        ? `${total - failed} of ${total} delivered; ${failed} failed again (${left[0].error}).`
        : `All ${total} delivered.`;
      break;
    }
    if (Date.now() > deadline) {
      status.textContent = `Still replaying (${pending} to go): the receiver is slow or retries are waiting.`;
      break;
    }
  }
  await after();
}

/** The dead letters under a card, with the button that replays them and follows the replay. */
function deadLettersDrawer(id, page, replayStatus, counters) {
  const dead = drawer('Dead letters', async () => {
    const { dead_letters: rows } = await api('GET', `/api/v1/webhooks/${enc(id)}/dead_letters?limit=100`);
    if (!rows.length) return h('div', {}, emptyState('No dead letters: every batch that ran out of retries has been delivered.'));
    const go = h('button', { type: 'button', class: 'btn-primary' }, `Replay ${rows.length} dead letter${rows.length === 1 ? '' : 's'}`);
    go.addEventListener('click', async () => {
      const ok = await confirmDialog(`Send the ${rows.length} dead letter${rows.length === 1 ? '' : 's'} of ${id} again now? They go before new events, in order.`, { confirm: 'Replay', danger: false });
      if (!ok) return;
      await busy(go, replay(id, rows.length, replayStatus, async () => {
        await dead.fill();
        await page.refresh();
      }).catch((err) => { replayStatus.textContent = explain(err); }));
    });
    return h('div', {}, deadLettersTable(id, rows), h('div', { class: 'row' }, go));
  }, counters);
  return dead;
}

/** A webhook's buttons: test now (the answer in `testResult`), edit, enable or disable, rotate, delete. */
function actionButtons(w, page, testResult) {
  const id = w.webhook_id;
  const test = h('button', { type: 'button' }, 'Test');
  test.addEventListener('click', () => busy(test, (async () => {
    testResult.textContent = `Sending a signed test event to ${w.url}…`;
    try {
      const r = await api('POST', '/api/v1/webhooks/test', { url: w.url, webhook_id: id, test_data: { sent_from: 'console' } });
      const ms = `${Math.round(r.response_time_ms)} ms`;
      testResult.replaceChildren(
        badge(r.success ? 'Test delivered' : 'Test failed', r.success ? 'ok' : 'err'),
        ' ',
        r.status_code ? `HTTP ${r.status_code} in ${ms}` : `No answer after ${ms}: ${r.error}`,
      );
    } catch (err) {
      testResult.textContent = explain(err);
    }
  })()));

  const toggle = h('button', { type: 'button' }, w.enabled ? 'Disable' : 'Enable');
  toggle.addEventListener('click', () => busy(toggle,
    api('POST', `/api/v1/webhooks/${enc(id)}/${w.enabled ? 'disable' : 'enable'}`)
      .then(() => {
        toast(`${id} ${w.enabled ? 'disabled: its events wait in the store' : 'enabled'}`, 'ok');
        return page.reload();
      })
      .catch((err) => toast(explain(err), 'error'))));

  const edit = h('button', { type: 'button' }, 'Edit');
  edit.addEventListener('click', () => page.edit(w));

  const rotate = h('button', { type: 'button' }, 'Rotate secret');
  rotate.addEventListener('click', async () => {
    const ok = await confirmDialog(`Make a new signing secret for ${id}? Deliveries are signed with it from the next batch: the receiver needs the new one.`, { confirm: 'Rotate secret', danger: false });
    if (!ok) return;
    await busy(rotate, api('POST', `/api/v1/webhooks/${enc(id)}/rotate_secret`)
      .then((r) => page.showSecret(id, r.secret, 'A new secret was made; the old one no longer signs.'))
      .catch((err) => toast(explain(err), 'error')));
  });

  const del = h('button', { type: 'button', class: 'btn-danger' }, 'Delete');
  del.addEventListener('click', async () => {
    const ok = await confirmDialog(`Delete the webhook ${id}? Events not yet delivered to it, its log and its dead letters go with it.`, { confirm: 'Delete' });
    if (!ok) return;
    await busy(del, api('DELETE', `/api/v1/webhooks/${enc(id)}`)
      .then(() => { toast(`${id} deleted`, 'ok'); return page.reload(); })
      .catch((err) => toast(explain(err), 'error')));
  });

  return [test, edit, toggle, rotate, del];
}

/** One webhook's card. `page` gives the page's hooks: reload, showSecret, edit. */
function webhookCard(w, page) {
  const id = w.webhook_id;
  const headingId = uid('card');
  const counts = countsList();
  const stateBadges = h('span', { class: 'badges' });
  const problem = h('p', { class: 'problem', role: 'status' });
  const testResult = h('p', { class: 'test-result', role: 'status' });
  const replayStatus = h('p', { class: 'replay-status', role: 'status' });

  const counters = () => page.refresh({ only: id });
  const deliveries = drawer('Delivery log', async () =>
    deliveriesTable(id, (await api('GET', `/api/v1/webhooks/${enc(id)}/deliveries?limit=20`)).deliveries), counters);
  const dead = deadLettersDrawer(id, page, replayStatus, counters);

  const buttons = actionButtons(w, page, testResult);

  const filters = [
    w.event_types ? w.event_types.map((t) => typeLabel[t] || t).join(', ') : 'Every event type',
    w.camera_ids ? `cameras ${w.camera_ids.join(', ')}` : 'every camera',
  ].join(' · ');

  const card = h('article', { class: 'card webhook', 'aria-labelledby': headingId },
    h('div', { class: 'card-head' }, h('h3', { id: headingId }, id), stateBadges),
    h('p', { class: 'break' }, h('code', {}, w.url)),
    h('p', { class: 'muted small' }, `${filters} · batches of ${w.batch_size}, ${w.retry_count} retr${w.retry_count === 1 ? 'y' : 'ies'} · `,
      w.origin === 'config' ? 'from the config file' : h('span', {}, 'added ', time(w.created_at))),
    counts.dl,
    problem,
    h('div', { class: 'row' }, ...buttons),
    testResult,
    h('div', { class: 'row' }, deliveries.toggle, dead.toggle),
    deliveries.panel,
    dead.panel,
    replayStatus);

  return {
    card,
    /** New numbers from `/webhooks/stats` (and the webhook's own problem, if any). */
    update(stats, detail, { refill = true } = {}) {
      counts.set(stats);
      const badges = [w.enabled ? badge('Enabled', 'ok') : badge('Disabled', 'muted')];
      if (detail?.delivery?.error) badges.push(badge('Not delivering', 'err'));
      if (stats?.dead_letters) badges.push(badge(`${stats.dead_letters} dead letter${stats.dead_letters === 1 ? '' : 's'}`, 'warn'));
      stateBadges.replaceChildren(...badges);
      problem.textContent = detail?.delivery?.error ? `Not delivering: ${detail.delivery.error}` : '';
      dead.toggle.textContent = stats?.dead_letters ? `Dead letters (${stats.dead_letters})` : 'Dead letters';
      if (refill && deliveries.open) deliveries.fill();
    },
  };
}

/**
 * What the page's parts share: drawing the list again, refreshing the counters, showing a secret
 * once, and the create and edit forms. `el` holds the page's slots and its "Add" button.
 */
function webhooksPage(el) {
  const { summary, formSlot, secretSlot, list, add } = el;
  let cards = new Map();
  const closeForm = () => {
    formSlot.replaceChildren();
    add.hidden = false;
  };
  const openForm = (w, onDone, focus) => {
    add.hidden = true;
    const form = webhookForm(w, { onDone, onCancel: closeForm });
    formSlot.replaceChildren(form);
    form.scrollIntoView({ block: 'nearest' });
    form.querySelector(`input[name="${focus}"]`).focus();
  };
  const page = {
    async reload() {
      let hooks;
      try {
        hooks = await api('GET', '/api/v1/webhooks');
      } catch (err) {
        list.replaceChildren(emptyState(`The webhooks could not be read: ${explain(err)}`));
        return;
      }
      cards = new Map(hooks.map((w) => [w.webhook_id, webhookCard(w, page)]));
      list.replaceChildren(...[...cards.values()].map((c) => c.card));
      if (!hooks.length) {
        list.replaceChildren(emptyState('No webhooks yet. Add one to have recognitions and alerts posted to your receiver as signed JSON.'));
      }
      await page.refresh();
    },
    /** The counters of every card (or of `only`'s, without refilling its open log). */
    async refresh({ only = null } = {}) {
      let stats;
      try {
        stats = await api('GET', '/api/v1/webhooks/stats');
      } catch {
        return;
      }
      summary.textContent = `${stats.total_webhooks} webhook${stats.total_webhooks === 1 ? '' : 's'}, ${stats.enabled_webhooks} enabled · ${stats.queue_size} event${stats.queue_size === 1 ? '' : 's'} waiting · delivery ${stats.manager_running ? 'running' : 'stopped'}`;
      for (const [id, c] of cards) {
        if (only && id !== only) continue;
        const detail = await api('GET', `/api/v1/webhooks/${enc(id)}`).catch(() => null);
        c.update(stats.webhooks[id], detail, { refill: !only });
      }
    },
    showSecret(id, secret, why) {
      secretSlot.replaceChildren(secretPanel(id, secret, why, () => add.focus()));
      secretSlot.scrollIntoView({ block: 'nearest' });
      secretSlot.querySelector('button')?.focus();
    },
    edit(w) {
      openForm(w, async () => {
        toast(`${w.webhook_id} saved`, 'ok');
        closeForm();
        await page.reload();
      }, 'url');
    },
    create() {
      openForm(null, async (answer) => {
        closeForm();
        await page.reload();
        // A create repeated with the same settings answers the stored webhook, without its secret.
        if (answer.secret) page.showSecret(answer.webhook_id, answer.secret, `${answer.webhook_id} was created.`);
        else toast(answer.message || `${answer.webhook_id} already exists`, 'info');
        if (answer.ignored_fields) toast(`Ignored: ${answer.ignored_fields.join(', ')}`, 'info');
      }, 'webhook_id');
    },
  };
  return page;
}

export default {
  title: 'Webhooks',
  async render(main) {
    const el = {
      summary: h('p', { class: 'muted', role: 'status' }),
      formSlot: h('div', { class: 'form-slot' }),
      secretSlot: h('div', { class: 'secret-slot' }),
      list: h('div', { class: 'webhook-list' }),
      add: h('button', { type: 'button', class: 'btn-primary' }, 'Add a webhook'),
    };
    const page = webhooksPage(el);
    el.add.addEventListener('click', () => page.create());
    main.replaceChildren(pageHeader('Webhooks', el.add), el.summary, el.secretSlot, el.formSlot, el.list);
    main.setAttribute('aria-busy', 'true');
    await page.reload();
    main.removeAttribute('aria-busy');
    const timer = setInterval(() => page.refresh(), REFRESH_MS);
    return () => clearInterval(timer);
  },
};

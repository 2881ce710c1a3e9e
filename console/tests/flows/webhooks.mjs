// The Webhooks page against a real receiver on loopback: create (the secret shown once, and it
// is the one deliveries are signed with), test, a delivery in the receiver and in the log, edit
// with a field error shown beside its field, disable and enable, rotate the secret, and a dead
// letter replayed once the receiver is well again.
import { openPage, goto, shot, check, waitFor, noConsoleErrors, api, env, receiver } from '../harness.mjs';

const card = (page, id) => page.getByRole('article', { name: id });

async function hook(id) {
  return api('GET', `/api/v1/webhooks/${id}`);
}

/** Fills the create/edit form; `fields` by label. */
async function fill(form, fields) {
  for (const [label, value] of Object.entries(fields)) {
    const input = form.getByLabel(label, { exact: true });
    if (typeof value === 'boolean') await input.setChecked(value);
    else await input.fill(String(value));
  }
}

/** Creates a webhook through the form; returns the secret the page showed once. */
async function create(page, id, url, fields = {}) {
  await page.getByRole('button', { name: /add a webhook/i }).click();
  const form = page.getByRole('form', { name: /add a webhook/i });
  await fill(form, { 'Webhook id': id, URL: url, ...fields });
  await form.getByRole('button', { name: /^create/i }).click();
  const shown = page.getByRole('region', { name: /signing secret/i });
  await waitFor('the signing secret shown after creating', () => shown.isVisible(), 10000);
  const secret = (await shown.locator('code').innerText()).trim();
  check(/^whsec_[A-Za-z0-9+/=]+$/.test(secret), `the page showed ${JSON.stringify(secret)} as the secret`);
  check(await shown.getByRole('button', { name: /copy/i }).isVisible(), 'no copy button beside the secret');
  return { secret, shown };
}

const deliver = {
  name: 'webhook-create-test-deliver',
  async run(t) {
    await receiver.set({ status: 200, clear: true });
    const page = await openPage(t.ctx, '/webhooks');
    const id = 'console_test';
    const { secret, shown } = await create(page, id, `${env.receiver}/hook`, { 'Batch timeout (s)': '0.5' });
    await shot(page, 'webhooks-secret');
    await receiver.set({ secret });
    await shown.getByRole('button', { name: /done|close|hide/i }).click();
    await goto(page, '/webhooks');
    check(!(await page.content()).includes(secret), 'the secret is still on the page after it was dismissed');

    // Test: the page shows the receiver's status and the latency; the receiver got it, signed.
    const c = card(page, id);
    await c.getByRole('button', { name: /^test/i }).click();
    await waitFor('the test result', async () => /HTTP 200/.test(await c.innerText()) && /\d+(\.\d+)? ms/.test(await c.innerText()), 15000);
    const test = (await receiver.received()).find((r) => r.body?.events?.[0]?.event_type === 'test');
    check(test, 'the receiver did not get the test event');
    check(test.verified === true, 'the test event was not signed with the secret the page showed');

    // A real delivery: an event recorded now reaches the receiver, signed, and shows in the log.
    await api('POST', '/api/v1/events/trigger', { event_type: 'face_detected', count: 1, camera_id: 'console_trigger' });
    const got = await waitFor('a delivery at the receiver', async () =>
      (await receiver.received()).find((r) => r.path === '/hook' && r.body?.events?.some((e) => e.camera_id === 'console_trigger')),
    );
    check(got.verified === true, 'the delivery was not signed with the secret the page showed');
    await c.getByRole('button', { name: /deliver(y|ies)/i }).click();
    const log = c.getByRole('table', { name: /deliver/i });
    await waitFor('a 200 in the delivery log', async () => {
      if (/\b200\b/.test(await log.innerText().catch(() => ''))) return true;
      await c.getByRole('button', { name: /refresh/i }).click().catch(() => {});
      return false;
    }, 15000, 1000);
    await shot(page, 'webhooks-deliveries');
    noConsoleErrors(page);
    t.state.webhook = id;
  },
};

const manage = {
  name: 'webhook-edit-toggle-rotate',
  needs: ['webhook-create-test-deliver'],
  async run(t) {
    const id = t.state.webhook;
    const page = await openPage(t.ctx, '/webhooks', { expect: [422] });
    const c = card(page, id);

    // Edit: a value out of range is refused with the API's message beside the field.
    await c.getByRole('button', { name: /^edit/i }).click();
    const form = page.getByRole('form', { name: new RegExp(`edit ${id}`, 'i') });
    await fill(form, { 'Retry delay (s)': '0.2', 'Batch size': '5' });
    await form.getByRole('button', { name: /^save/i }).click();
    const field = form.getByLabel('Retry delay (s)', { exact: true });
    await waitFor('the field error on retry delay', async () => (await field.getAttribute('aria-invalid')) === 'true', 10000);
    const described = await field.evaluate((el) =>
      [el.getAttribute('aria-errormessage'), ...(el.getAttribute('aria-describedby') || '').split(' ')]
        .map((i) => (i && document.getElementById(i)?.textContent) || '').join(' '),
    );
    check(/retry_delay|between|1/.test(described), `the field error says ${JSON.stringify(described)}`);
    await shot(page, 'webhooks-field-error');
    await fill(form, { 'Retry delay (s)': '2' });
    await form.getByRole('button', { name: /^save/i }).click();
    await waitFor('the saved edit', async () => (await hook(id)).batch_size === 5 && (await hook(id)).retry_delay === 2, 10000);

    // Disable and enable.
    await card(page, id).getByRole('button', { name: /^disable/i }).click();
    await waitFor('disabled', async () => (await hook(id)).enabled === false && /disabled/i.test(await card(page, id).innerText()), 10000);
    await card(page, id).getByRole('button', { name: /^enable/i }).click();
    await waitFor('enabled again', async () => (await hook(id)).enabled === true, 10000);

    // Rotate: a new secret, shown once, which later deliveries are signed with.
    await card(page, id).getByRole('button', { name: /rotate/i }).click();
    await page.getByRole('dialog').getByRole('button', { name: /rotate/i }).click();
    const shown = page.getByRole('region', { name: /signing secret/i });
    await waitFor('the new secret', () => shown.isVisible(), 10000);
    const secret = (await shown.locator('code').innerText()).trim();
    await receiver.set({ secret, clear: true });
    await api('POST', '/api/v1/events/trigger', { event_type: 'face_detected', count: 1, camera_id: 'console_trigger' });
    const got = await waitFor('a delivery signed with the new secret', async () =>
      (await receiver.received()).find((r) => r.path === '/hook' && r.body?.events?.some((e) => e.camera_id === 'console_trigger')),
    );
    check(got.verified === true, 'the delivery after rotating was not signed with the secret the page showed');
    noConsoleErrors(page);
  },
};

const deadLetter = {
  name: 'dead-letter-replay',
  async run(t) {
    await receiver.set({ status: 500, secret: null, clear: true });
    const page = await openPage(t.ctx, '/webhooks');
    const id = 'console_dead';
    // No retries, only the trigger's camera: the first failure is a dead letter at once.
    const { shown } = await create(page, id, `${env.receiver}/dead`, {
      'Retries': '0',
      'Batch timeout (s)': '0.2',
      'Cameras': 'console_dead_cam',
    });
    await shown.getByRole('button', { name: /done|close|hide/i }).click();
    await api('POST', '/api/v1/events/trigger', { event_type: 'attendance_recorded', count: 2, camera_id: 'console_dead_cam' });
    await waitFor('a dead letter', async () => (await hook(id)).delivery.dead_letters > 0, 30000);
    await goto(page, '/webhooks');
    const c = card(page, id);
    await c.getByRole('button', { name: /dead letters/i }).click();
    const list = c.getByRole('table', { name: /dead letters/i });
    await waitFor('the dead letter on the page with its error', async () => /500/.test(await list.innerText()), 10000);
    await shot(page, 'webhooks-dead-letters');

    await receiver.set({ status: 200 });
    await c.getByRole('button', { name: /^replay/i }).click();
    const dialog = page.getByRole('dialog');
    if (await dialog.isVisible().catch(() => false)) await dialog.getByRole('button', { name: /replay/i }).click();
    await waitFor('the replay delivered', async () =>
      (await receiver.received()).some((r) => r.path === '/dead' && r.status === 200 && r.body?.events?.length), 30000);
    await waitFor('no dead letters left, on the page', async () => /no dead letters/i.test(await c.innerText()), 30000);
    check((await hook(id)).delivery.dead_letters === 0, 'the API still counts dead letters');
    await shot(page, 'webhooks-replayed');
    noConsoleErrors(page);
  },
};

export const flows = [deliver, manage, deadLetter];

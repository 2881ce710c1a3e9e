// The Events page: the recognition of the enrolled person is on the timeline, and a stranger's
// snapshot is shown and named ("this is ..."), which enrols them.
import { openPage, goto, shot, check, waitFor, noConsoleErrors, api } from '../harness.mjs';
import { ENROLLED } from './people.mjs';

const recognised = {
  name: 'recognised-in-events',
  needs: ['recognised-live'],
  async run(t) {
    const page = await openPage(t.ctx, '/events');
    await waitFor(
      `${ENROLLED}'s recognition on the timeline`,
      async () => {
        if ((await page.getByText(ENROLLED).count()) > 0) return true;
        await goto(page, '/events');
        return false;
      },
      30000,
      2000,
    );
    await shot(page, 'events');
    noConsoleErrors(page);
  },
};

const STRANGER_NAME = 'Door Visitor';

const nameStranger = {
  name: 'name-stranger',
  needs: ['add-file-camera'],
  async run(t) {
    await waitFor(
      'a stranger_alert from the camera',
      async () => (await api('GET', '/api/v1/events?after_seq=0&limit=100&event_type=stranger_alert')).events.length > 0,
      90000,
      1000,
    );
    const page = await openPage(t.ctx, '/events?type=stranger_alert');
    const snapshot = page.locator('img[src*="snapshot.jpg"]').first();
    await waitFor('a stranger snapshot on the timeline', async () => {
      if ((await snapshot.count()) === 0) await goto(page, '/events?type=stranger_alert');
      return snapshot.evaluate((i) => i.complete && i.naturalWidth > 0);
    }, 30000, 1000);
    check((await snapshot.getAttribute('alt')) || '', 'the snapshot has no alt text');
    await shot(page, 'events-stranger');
    await page.getByRole('button', { name: /this is/i }).first().click();
    const dialog = page.getByRole('dialog').or(page.getByRole('form', { name: /this is|name/i }));
    await dialog.first().getByLabel(/name/i).first().fill(STRANGER_NAME);
    await dialog.first().getByRole('button', { name: /enrol|save|name/i }).first().click();
    await waitFor(
      `${STRANGER_NAME} in the gallery`,
      async () => (await api('GET', `/api/v1/faces?name=${encodeURIComponent(STRANGER_NAME)}`)).faces.length > 0,
      30000,
    );
    const people = await openPage(t.ctx, '/people');
    await waitFor(`${STRANGER_NAME} on the People page`, () => people.getByRole('article', { name: STRANGER_NAME }).isVisible(), 10000);
    noConsoleErrors(page);
    noConsoleErrors(people);
  },
};

export const flows = [recognised, nameStranger];

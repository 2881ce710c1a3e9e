// The Events page: the recognition of the enrolled person is on the timeline, and a stranger's
// snapshot is shown and named ("this is ..."), which enrols them.
import { openPage, goto, shot, check, waitFor, noConsoleErrors, api } from '../harness.mjs';
import { ENROLLED } from './people.mjs';

const recognised = {
  name: 'recognised-in-events',
  needs: ['enrol-from-photos', 'add-file-camera'],
  async run(t) {
    await waitFor(
      `${ENROLLED} recognised by the camera`,
      async () => {
        const found = await api('GET', '/api/v1/events?after_seq=0&limit=1000&event_type=face_recognized');
        return found.events.some((e) => (e.event.data.recognized_faces || []).some((f) => f.name === ENROLLED));
      },
      60000,
      1000,
    );
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
    const page = await openPage(t.ctx, '/events?event_type=stranger_alert');
    // The newest stranger whose snapshot shows.
    const item = page.locator('li.event').filter({ has: page.locator('img.snapshot') }).first();
    await waitFor('a stranger snapshot on the timeline', async () => {
      if ((await item.count()) === 0) await goto(page, '/events?event_type=stranger_alert');
      return item.locator('img.snapshot').evaluate((i) => i.complete && i.naturalWidth > 0);
    }, 30000, 1000);
    check(/stranger/i.test(await item.locator('img.snapshot').getAttribute('alt')), 'the snapshot\'s alt text does not say what it shows');
    await shot(page, 'events-stranger');
    await item.getByRole('button', { name: /this is/i }).click();
    await item.getByLabel(/who is this/i).fill(STRANGER_NAME);
    await item.getByRole('button', { name: /^enrol$/i }).click();
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

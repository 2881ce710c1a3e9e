// The Cameras page: add a file camera (the demo's door frames in api.media_dir), see it run, and
// watch it live: the person enrolled by people.mjs walks up and is recognised.
import { openPage, shot, check, waitFor, noConsoleErrors, api, env, settle } from '../harness.mjs';
import { ENROLLED } from './people.mjs';

export const CAMERA = 'door';

const addCamera = {
  name: 'add-file-camera',
  async run(t) {
    const page = await openPage(t.ctx, '/cameras');
    await page.getByRole('button', { name: /add (a )?camera/i }).click();
    const form = page.getByRole('form', { name: /add (a )?camera/i });
    await form.getByLabel(/camera id|^id|^name/i).first().fill(CAMERA);
    const kind = form.getByLabel(/kind|type|source type/i);
    if (await kind.count()) await kind.first().selectOption({ label: /file|folder|media/i }).catch(() => {});
    await form.getByLabel(/source|path|file/i).first().fill(env.cameraSource);
    const fps = form.getByLabel(/fps|frames per second/i);
    if (await fps.count()) await fps.first().fill('4');
    await form.getByRole('button', { name: /^add|save|create/i }).click();
    await waitFor('the camera running', async () => (await api('GET', `/api/v1/cameras/${CAMERA}`)).state === 'running', 30000);
    const row = page.getByRole('article', { name: CAMERA }).or(page.getByRole('row', { name: new RegExp(CAMERA) }));
    await waitFor('the camera on the page, running', async () => /running/i.test(await row.first().innerText()), 15000);
    await shot(page, 'cameras-added');
    noConsoleErrors(page);
    t.state.camera = CAMERA;
  },
};

const live = {
  name: 'recognised-live',
  needs: ['enrol-from-photos', 'add-file-camera'],
  async run(t) {
    const page = await openPage(t.ctx, '/cameras');
    const row = page.getByRole('article', { name: CAMERA }).or(page.getByRole('row', { name: new RegExp(CAMERA) }));
    await row.first().getByRole('button', { name: /live|watch|view/i }).first().click();
    const view = page.locator('img[src*="live.mjpg"], img[src*="snapshot.jpg"]').first();
    await waitFor('frames in the live view', () => view.evaluate((i) => i.complete && i.naturalWidth > 0), 20000);
    // The names are drawn into the frames; the recognition itself is read from the events.
    await waitFor(
      `${ENROLLED} recognised by the camera`,
      async () => {
        const page2 = await api('GET', '/api/v1/events?after_seq=0&limit=1000&event_type=face_recognized');
        return page2.events.some((e) => (e.event.data.recognized_faces || []).some((f) => f.name === ENROLLED));
      },
      60000,
      1000,
    );
    await shot(page, 'cameras-live');
    check(await view.evaluate((i) => i.naturalWidth > 0), 'the live view stopped');
    noConsoleErrors(page);
    t.state.recognised = true;
  },
};

export const flows = [addCamera, live];

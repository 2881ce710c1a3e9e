// The Cameras page: add a file camera (the demo's door frames in api.media_dir), see it run, and
// watch it live: the person enrolled by people.mjs walks up and is recognised.
import { openPage, shot, check, waitFor, noConsoleErrors, api, env } from '../harness.mjs';
import { ENROLLED } from './people.mjs';

export const CAMERA = 'door';

const cameraCard = (page) => page.getByRole('region', { name: CAMERA, exact: true });

const addCamera = {
  name: 'add-file-camera',
  async run(t) {
    const page = await openPage(t.ctx, '/cameras');
    await page.getByRole('button', { name: /add a camera/i }).click();
    const form = page.getByRole('form', { name: /add a camera/i });
    await form.getByLabel('Name', { exact: true }).fill(CAMERA);
    await form.getByRole('radio', { name: /file or picture folder/i }).check();
    await form.getByLabel('File or folder', { exact: true }).fill(env.cameraSource);
    await form.getByLabel(/frames analysed a second/i).fill('4');
    await form.getByRole('button', { name: /^add camera$/i }).click();
    await waitFor('the camera running', async () => (await api('GET', `/api/v1/cameras/${CAMERA}`)).state === 'running', 30000);
    await waitFor('the camera on the page, running', async () => /running/i.test(await cameraCard(page).innerText()), 15000);
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
    await cameraCard(page).getByRole('button', { name: /^live view$/i }).click();
    const view = page.getByRole('img', { name: new RegExp(`live view of ${CAMERA}`, 'i') });
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

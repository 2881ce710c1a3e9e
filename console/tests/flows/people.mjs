// The People page: enrol a person from photos (the camera recognises them later, in
// cameras.mjs), from a video, and the gallery's chores: search, rename, add and remove photos,
// delete with a confirmation.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openPage, shot, check, waitFor, noConsoleErrors, api, photosOf, settle, env } from '../harness.mjs';

/** The person the camera's frames show and the suite enrols (demo/frames.rs's first one). */
export const ENROLLED = 'John Salley';

/** A person's card on the People page: an article named by its heading. */
function card(page, name) {
  return page.getByRole('article', { name });
}

async function faces(name) {
  return (await api('GET', `/api/v1/faces?name=${encodeURIComponent(name)}&limit=100`)).faces;
}

/** Every image in `scope` has loaded a picture (a crop from the appliance). */
async function imagesLoaded(scope, count) {
  const sizes = await scope.getByRole('img').evaluateAll((imgs) => imgs.map((i) => i.complete && i.naturalWidth));
  return sizes.length === count && sizes.every((w) => w > 0);
}

/** Opens the enrolment form, fills it and submits it; `files` for the file input. */
async function enrol(page, { name, files, video = false }) {
  const form = page.getByRole('region', { name: /enrol a person/i });
  if (!(await form.getByLabel('Name', { exact: true }).isVisible())) {
    await page.getByRole('button', { name: /enrol a person/i }).click();
  }
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByRole('radio', { name: video ? /from a video/i : /from photos/i }).check();
  await form.getByLabel(video ? /^video/i : /^photos/i).setInputFiles(files);
  await form.getByRole('button', { name: /^enrol$/i }).click();
  return form;
}

const fromPhotos = {
  name: 'enrol-from-photos',
  async run(t) {
    // A file that is not a photo is refused (422) with a sentence, and the good ones still count.
    const page = await openPage(t.ctx, '/people', { expect: [422] });
    const photos = photosOf('John_Salley').slice(0, 3)
      .map((p) => ({ name: basename(p), mimeType: 'image/jpeg', buffer: readFileSync(p) }));
    const notAPhoto = { name: 'notes.jpg', mimeType: 'image/jpeg', buffer: Buffer.from('not a picture') };
    const form = await enrol(page, { name: ENROLLED, files: [...photos, notAPhoto] });
    // One line of progress per photo, each ending "enrolled" or why not.
    await waitFor('each photo reported enrolled', async () => (await form.getByText(/^enrolled$/i).count()) === 3, 60000);
    await waitFor('the refusal of the file that is not a photo', async () =>
      (await form.getByText(/refused: .*not a picture/i).count()) === 1, 10000);
    await shot(page, 'people-enrolled');
    const person = card(page, ENROLLED);
    await waitFor(`${ENROLLED}'s card`, () => person.isVisible(), 10000);
    check((await faces(ENROLLED)).length === 3, `the gallery does not hold 3 photos of ${ENROLLED}`);
    noConsoleErrors(page);
    t.state.enrolled = ENROLLED;
  },
};

const thumbnails = {
  name: 'people-thumbnails',
  needs: ['enrol-from-photos'],
  async run(t) {
    const page = await openPage(t.ctx, '/people');
    const person = card(page, ENROLLED);
    await waitFor(`3 thumbnails of ${ENROLLED} (their face crops)`, () => imagesLoaded(person, 3), 10000);
    // Each opens the photo it was cut from.
    const href = await person.getByRole('link').first().getAttribute('href');
    const photo = await page.request.get(new URL(href, page.url()).href);
    check(photo.ok() && photo.headers()['content-type'] === 'image/jpeg', `${href}: ${photo.status()} ${photo.headers()['content-type']}`);
    noConsoleErrors(page);
  },
};

const fromVideo = {
  name: 'enrol-from-video',
  async run(t) {
    // MJPEG is JPEGs one after the other: the door camera's frames of John Savage walking up
    // (demo/frames.rs: frames 24 to 31 of its loop), a person nobody enrolled.
    const frames = readdirSync(env.demoFrames).filter((f) => f.endsWith('.jpg')).sort().slice(24, 32);
    check(frames.length === 8, `no demo frames in ${env.demoFrames}`);
    const buffer = Buffer.concat(frames.map((f) => readFileSync(join(env.demoFrames, f))));
    const page = await openPage(t.ctx, '/people');
    const name = 'Video Person';
    const form = await enrol(page, {
      name,
      video: true,
      files: { name: 'savage.mjpeg', mimeType: 'video/x-motion-jpeg', buffer },
    });
    await waitFor('the video enrolment to finish', async () => (await form.getByText(/frames? enrolled/i).count()) > 0, 90000);
    const n = (await faces(name)).length;
    check(n >= 1 && n <= 5, `the video enrolled ${n} frames`);
    await waitFor(`${name}'s card`, () => card(page, name).isVisible(), 10000);
    await shot(page, 'people-video');
    // Tidy: the camera must not see this person under a made-up name.
    await api('DELETE', `/api/v1/faces/by-name/${encodeURIComponent(name)}`);
    noConsoleErrors(page);
  },
};

const manage = {
  name: 'people-manage',
  async run(t) {
    const page = await openPage(t.ctx, '/people');
    const [a, b, c] = photosOf('John_Shimkus');
    await enrol(page, { name: 'Shimkus Temp', files: [a, b] });
    let person = card(page, 'Shimkus Temp');
    await waitFor('the new person', () => person.isVisible(), 60000);

    // Search narrows the list to them.
    await page.getByRole('searchbox', { name: /search/i }).fill('shimkus');
    await waitFor('the search to hide everyone else', async () => (await page.getByRole('article').count()) === 1, 5000);
    await page.getByRole('searchbox', { name: /search/i }).fill('');

    // Rename.
    await person.getByRole('button', { name: /rename/i }).click();
    await person.getByLabel(/new name/i).fill('Shimkus Renamed');
    await person.getByRole('button', { name: /save/i }).click();
    person = card(page, 'Shimkus Renamed');
    await waitFor('the renamed card', () => person.isVisible(), 10000);
    check((await faces('Shimkus Renamed')).length === 2, 'the rename did not carry both photos');

    // Add a photo, then remove one.
    await person.getByLabel(/add photos/i).setInputFiles([c]);
    await waitFor('a third photo', async () => (await faces('Shimkus Renamed')).length === 3, 60000);
    await waitFor('three photos on the card', async () => (await person.getByRole('button', { name: /remove photo/i }).count()) === 3, 10000);
    await person.getByRole('button', { name: /remove photo/i }).first().click();
    await page.getByRole('dialog').getByRole('button', { name: /remove/i }).click();
    await waitFor('two photos left', async () => (await faces('Shimkus Renamed')).length === 2, 10000);
    await shot(page, 'people-manage');

    // Delete the person, after saying yes.
    await person.getByRole('button', { name: /delete/i }).click();
    const dialog = page.getByRole('dialog');
    check(/Shimkus Renamed/.test(await dialog.innerText()), 'the confirmation does not name the person');
    await dialog.getByRole('button', { name: /delete/i }).click();
    await waitFor('the card to go', async () => !(await person.isVisible()), 10000);
    check((await faces('Shimkus Renamed')).length === 0, 'the person is still in the gallery');
    await settle(page);
    noConsoleErrors(page);
  },
};

/** The People page by keyboard alone: Tab reaches "Enrol a person", Enter opens the form there. */
const keyboard = {
  name: 'people-keyboard',
  async run(t) {
    const page = await openPage(t.ctx, '/people');
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.textContent === 'Enrol a person');
    }
    check(reached, 'Tab never reached "Enrol a person"');
    const ring = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(ring !== 'none', 'the focused button shows no focus ring');
    // With nobody enrolled yet the form is open already: Enter closes it, and Enter again opens it.
    if ((await page.evaluate(() => document.activeElement.getAttribute('aria-expanded'))) === 'true') {
      await page.keyboard.press('Enter');
    }
    await page.keyboard.press('Enter');
    await waitFor('the Name field focused', () => page.evaluate(() => document.activeElement?.name === 'name'), 5000);
    await page.keyboard.press('Escape');
    noConsoleErrors(page);
  },
};

export const flows = [fromPhotos, thumbnails, fromVideo, manage, keyboard];

// Every page, as the run left the appliance (a camera, people, webhooks, events): at 1280x800 and
// on a 360x740 phone, each checked with axe-core (no serious or critical violation), for errors in
// the browser's console, and on the phone for sideways scrolling and a nav that reaches every
// page; a screenshot of each at both sizes.
import { openPage, goto, shot, check, waitFor, noConsoleErrors, axe, PAGES, DESKTOP, PHONE } from '../harness.mjs';

async function visit(page, p, label) {
  await goto(page, p.path);
  if (p.path !== '/signin') {
    await waitFor(`${label} to show its page`, () => new URL(page.url()).pathname === p.path, 10000);
  }
  // Live views and images: give them a moment, so the screenshots show them.
  await page.waitForTimeout(p.name === 'cameras' ? 2000 : 500);
}

/** Fails on a page wider than the phone (a table or a form that does not fold). */
async function noSidewaysScroll(page, label) {
  const wide = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    const over = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > w + 1 && getComputedStyle(el).position !== 'fixed')
      // What a scrolling box (the nav's row on a phone, a wide table's wrapper) holds is reachable.
      .filter((el) => {
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
          if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return false;
        }
        return true;
      })
      .slice(0, 3)
      .map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).split(' ').join('.')}` : ''}`);
    return { scroll: document.documentElement.scrollWidth, w, over };
  });
  check(wide.scroll <= wide.w + 1, `${label} scrolls sideways (${wide.scroll} px wide in ${wide.w}): ${wide.over.join(', ')}`);
}

function tour(viewport, name) {
  return {
    name,
    async run(t) {
      const failures = [];
      // Each page is checked on its own, so one page's fault does not hide another's.
      for (const p of PAGES) {
        const label = `${p.name} at ${viewport.width}x${viewport.height}`;
        const page = await openPage(t.ctx, null, { viewport });
        try {
          await visit(page, p, label);
          await shot(page, p.name);
          await axe(page, label);
          if (viewport === PHONE) {
            await noSidewaysScroll(page, label);
            if (p.nav) await navReaches(page, p, label);
          }
          noConsoleErrors(page);
        } catch (e) {
          failures.push(`${label}: ${e.message.split('\n').join('\n    ')}`);
        } finally {
          await page.close();
        }
      }
      check(failures.length === 0, failures.join('\n      '));
    },
  };
}

/** On the phone, the nav (open behind a menu button if it folds) leads to the page. */
async function navReaches(page, p, label) {
  const link = page.getByRole('navigation').getByRole('link', { name: p.nav, exact: true });
  if (!(await link.isVisible())) {
    await page.getByRole('button', { name: /menu/i }).click();
  }
  check(await link.isVisible(), `${label}: the nav link ${p.nav} cannot be reached`);
  const box = await link.boundingBox();
  check(box && box.height >= 44, `${label}: the nav link ${p.nav} is ${box?.height} px tall, under 44`);
  check((await link.getAttribute('aria-current')) === 'page', `${label}: the nav does not mark ${p.nav} as the current page`);
}

const mqtt = {
  name: 'mqtt-gpio-page',
  async run(t) {
    const page = await openPage(t.ctx, '/mqtt');
    await waitFor('the MQTT state', async () => /MQTT is off|not configured/i.test(await page.locator('main').innerText()), 10000);
    // The configured door relay cannot be driven on a machine without GPIO: the page says so.
    await waitFor('the GPIO actions shown as not running here', async () => /No GPIO here/.test(await page.locator('main').innerText()), 10000);
    noConsoleErrors(page);
  },
};

export const flows = [mqtt, tour(DESKTOP, 'every-page-desktop'), tour(PHONE, 'every-page-phone')];

// The console's browser suite: runs each flow in order in one browser profile, prints one line per
// flow (ok, FAIL with why, or not run because a flow it needs failed) and a closing count, and
// exits 1 if any flow did not pass. A failing flow leaves a screenshot of every tab it had open,
// `FAILED-<flow>-<n>.png`, beside the pages' screenshots.
//
//   node run.mjs [FLOW...]     (scripts/console-test.sh sets the environment; see harness.mjs)
import { join } from 'node:path';
import { launch, env, Check, signInQuietly, tolerated } from './harness.mjs';
import { flows as signin } from './flows/signin.mjs';
import { flows as people } from './flows/people.mjs';
import { flows as cameras } from './flows/cameras.mjs';
import { flows as events } from './flows/events.mjs';
import { flows as webhooks } from './flows/webhooks.mjs';
import { flows as tour } from './flows/tour.mjs';

// The order matters: a person is enrolled before the camera shows them, and the sign-out is last.
const ALL = [...signin.slice(0, 1), ...people, ...cameras, ...events, ...webhooks, ...tour, ...signin.slice(1)];
const FLOW_TIMEOUT_MS = 180000;

const asked = process.argv.slice(2);
const chosen = asked.length ? ALL.filter((f) => asked.includes(f.name)) : ALL;
if (asked.length && chosen.length !== asked.length) {
  console.error(`unknown flow; the flows are: ${ALL.map((f) => f.name).join(', ')}`);
  process.exit(2);
}

const ctx = await launch();
const t = { ctx, state: {} };
if (!chosen.some((f) => f.name === 'sign-in')) await signInQuietly(t);
const results = [];
const started = Date.now();
for (const flow of chosen) {
  const missing = (flow.needs || []).filter((n) => results.some((r) => r.name === n && r.outcome !== 'ok'));
  if (missing.length) {
    results.push({ name: flow.name, outcome: 'not run', why: `needs ${missing.join(', ')}, which did not pass` });
    report(results.at(-1));
    continue;
  }
  const t0 = Date.now();
  const before = new Set(ctx.pages());
  let outcome = 'ok';
  let why = '';
  let timer;
  try {
    await Promise.race([
      flow.run(t),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Check(`took longer than ${FLOW_TIMEOUT_MS / 1000} s`)), FLOW_TIMEOUT_MS);
      }),
    ]);
  } catch (e) {
    outcome = 'FAIL';
    why = e instanceof Check ? e.message : (e.stack || String(e)).split('\n').slice(0, 4).join('\n      ');
    let n = 0;
    for (const page of ctx.pages().filter((p) => !before.has(p))) {
      await page.screenshot({ path: join(env.shots, `FAILED-${flow.name}-${n++}.png`), fullPage: true }).catch(() => {});
    }
  } finally {
    clearTimeout(timer);
  }
  for (const page of ctx.pages().filter((p) => !before.has(p))) await page.close().catch(() => {});
  results.push({ name: flow.name, outcome, why, seconds: (Date.now() - t0) / 1000 });
  report(results.at(-1));
}
await ctx.close();

function report(r) {
  const time = r.seconds === undefined ? '' : ` (${r.seconds.toFixed(1)} s)`;
  const mark = { ok: 'ok     ', FAIL: 'FAIL   ', 'not run': 'not run' }[r.outcome];
  console.log(`console-test: ${mark} ${r.name}${time}${r.why ? `\n      ${r.why}` : ''}`);
}

const passed = results.filter((r) => r.outcome === 'ok').length;
const failed = results.length - passed;
console.log(`console-test: screenshots in ${env.shots}; ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
if (t.state.bearer) console.log('console-test: note: signing in failed, so the later flows ran with the token as a Bearer header');
for (const [e, n] of tolerated) console.log(`console-test: tolerated (FACECV_CONSOLE_TOLERATE): ${e}${n > 1 ? ` (${n} times)` : ''}`);
console.log(`console: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

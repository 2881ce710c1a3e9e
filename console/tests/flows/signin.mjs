// Signing in with the API token (a wrong one is told; the right one lands on Overview with a
// session cookie as the issue asks: HttpOnly, SameSite=Strict, Secure over HTTPS, an expiry) and
// signing out (the cookie and the session end).
import { openPage, goto, settle, shot, check, waitFor, noConsoleErrors, env } from '../harness.mjs';

const signIn = {
  name: 'sign-in',
  async run(t) {
    try {
      await signInFlow(t);
    } catch (e) {
      // Without a working sign-in the other pages can still be checked: the browser then sends
      // the token itself, as a script would. The summary says so.
      t.state.bearer = true;
      await t.ctx.setExtraHTTPHeaders({ authorization: `Bearer ${env.token}` });
      throw e;
    }
  },
};

async function signInFlow(t) {
  // Chromium logs the wrong token's 401 as a failed resource: expected here.
  const page = await openPage(t.ctx, '/', { expect: [401] });
  await waitFor('the sign-in page on a first visit', () => new URL(page.url()).pathname === '/signin', 15000);
  await settle(page);
  const token = page.getByLabel(/token/i);
  const submit = page.getByRole('button', { name: /sign in/i });
  await token.fill('not-the-token-0123456789');
  await submit.click();
  await waitFor(
    'an error for the wrong token',
    async () => (await page.getByText(/wrong|invalid|not right|not accepted|incorrect|not valid/i).count()) > 0,
    10000,
  );
  check(new URL(page.url()).pathname === '/signin', `a wrong token left the sign-in page: ${page.url()}`);
  await shot(page, 'signin-wrong-token');

  await token.fill(env.token);
  await submit.click();
  await waitFor('Overview after signing in', () => new URL(page.url()).pathname === '/', 15000);
  await settle(page);
  await waitFor('the Overview heading', () => page.getByRole('heading', { name: /overview/i }).first().isVisible(), 10000);

  const cookie = (await t.ctx.cookies(env.url)).find((c) => c.name === 'facecv_session');
  check(cookie, 'no facecv_session cookie after signing in');
  check(cookie.httpOnly, 'the session cookie is not HttpOnly');
  check(cookie.secure, 'the session cookie is not Secure over HTTPS');
  check(cookie.sameSite === 'Strict', `the session cookie is SameSite=${cookie.sameSite}, not Strict`);
  check(cookie.expires > Date.now() / 1000, 'the session cookie has no expiry');
  check(
    !(await page.evaluate(() => document.cookie)).includes('facecv_session'),
    'the session cookie is readable from scripts',
  );
  noConsoleErrors(page);
  t.state.signedIn = true;
}

const signOut = {
  name: 'sign-out',
  needs: ['sign-in'],
  async run(t) {
    const page = await openPage(t.ctx, '/', { expect: [401] });
    await page.getByRole('button', { name: /sign out/i }).click();
    await waitFor('the sign-in page after signing out', () => new URL(page.url()).pathname === '/signin', 10000);
    const left = (await t.ctx.cookies(env.url)).find((c) => c.name === 'facecv_session' && c.value);
    check(!left, 'the session cookie is still there after signing out');
    // Another page now asks to sign in again.
    await goto(page, '/webhooks');
    await waitFor('the sign-in page when signed out', () => new URL(page.url()).pathname === '/signin', 10000);
    noConsoleErrors(page);
  },
};

export const flows = [signIn, signOut];

// The router: one shell page, each path drawn by its module in pages/, loaded when first shown.
// A page's render() may return a cleanup function (timers, live views) called when it is left.

import { api, session, signOut, explain } from './api.js';
import { h, toast, errorBox } from './ui.js';

const ROUTES = {
  '/': 'overview',
  '/signin': 'signin',
  '/cameras': 'cameras',
  '/people': 'people',
  '/events': 'events',
  '/webhooks': 'webhooks',
  '/mqtt': 'mqtt',
  '/system': 'system',
};

const main = document.getElementById('main');
let cleanup = null;
let generation = 0;
let firstRender = true;

/** Changes page without a reload; `replace` rewrites the current history entry instead. */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

async function render() {
  const mine = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.warn('a page cleanup failed', e);
    }
    cleanup = null;
  }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const name = ROUTES[path];
  highlight(path);
  if (!name) {
    main.replaceChildren(h('h1', {}, 'Not found'),
      h('p', {}, 'There is no such page. '), h('a', { href: '/' }, 'Go to the overview'));
    return;
  }
  let s;
  try {
    s = await session();
  } catch (e) {
    if (mine !== generation) return;
    main.replaceChildren(h('h1', {}, 'FaceCV Edge'), errorBox(e, () => render()));
    return;
  }
  if (mine !== generation) return;
  showSignOut(s);
  if (!s.signed_in && name !== 'signin') {
    navigate('/signin?next=' + encodeURIComponent(location.pathname + location.search), { replace: true });
    return;
  }
  let page;
  try {
    page = (await import(`./pages/${name}.js`)).default;
  } catch (e) {
    if (mine !== generation) return;
    main.replaceChildren(h('h1', {}, 'Not available'),
      h('p', {}, 'This page could not be loaded. Reload the page; if it stays, this version of the console lacks it.'));
    console.warn(e);
    return;
  }
  if (mine !== generation) return;
  document.title = `${page.title} · FaceCV Edge`;
  main.replaceChildren();
  const ctx = {
    params: new URLSearchParams(location.search),
    navigate,
    session: s,
    /** Rewrites the query string without drawing the page again (filters kept in the URL). */
    replaceParams(params) {
      const q = params.toString();
      history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
      this.params = new URLSearchParams(q);
    },
    /** Whether the page is still the one shown (false once the user went elsewhere). */
    get current() {
      return mine === generation;
    },
  };
  try {
    const done = await page.render(main, ctx);
    if (mine !== generation) {
      if (typeof done === 'function') done();
      return;
    }
    cleanup = typeof done === 'function' ? done : null;
  } catch (e) {
    if (mine !== generation) return;
    console.error(e);
    main.replaceChildren(h('h1', {}, page.title), errorBox(e, () => render()));
  }
  if (!firstRender) main.focus({ preventScroll: true });
  firstRender = false;
  window.scrollTo(0, 0);
}

function highlight(path) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === path) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showSignOut(s) {
  const button = document.getElementById('signout');
  button.hidden = !(s.signed_in && s.auth === 'token');
}

let deviceShown = false;
async function showDevice() {
  if (deviceShown) return;
  try {
    const s = await session();
    if (!s.signed_in) return;
    const sys = await api('GET', '/api/v1/system');
    document.getElementById('device').textContent = sys.hostname || sys.device_id || '';
    deviceShown = true;
  } catch {
    // An appliance without /api/v1/system: the header stays without the device's name.
  }
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download') || a.getAttribute('href').startsWith('#')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !ROUTES[url.pathname.replace(/\/+$/, '') || '/']) return;
  e.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});

window.addEventListener('popstate', () => render());

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await signOut();
    deviceShown = false;
    document.getElementById('device').textContent = '';
    navigate('/signin');
    toast('Signed out.', 'ok');
  } catch (e) {
    toast(explain(e), 'error');
  }
});

window.addEventListener('facecv:signed-in', () => showDevice());

render().then(showDevice);

// Sign-in: the API token in, a session cookie back (HttpOnly: the page never holds it).

import { session, signIn, explain, ApiError } from '../api.js';
import { h, busy, showFieldErrors } from '../ui.js';

/** Where to go after signing in: only a path of this console (never another site). */
function nextPath(params) {
  const next = params.get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

export default {
  title: 'Sign in',
  async render(main, ctx) {
    const s = await session();
    const next = nextPath(ctx.params);
    if (s.signed_in) {
      main.append(h('section', { class: 'signin card' },
        h('h1', {}, 'Signed in'),
        h('p', {}, s.auth === 'loopback'
          ? 'No sign-in is needed: this appliance has no API token and this browser is on the device itself.'
          : 'You are signed in.'),
        h('a', { href: next, class: 'btn btn-primary' }, 'Continue')));
      return;
    }
    const input = h('input', {
      id: 'token', name: 'token', type: 'password', required: true,
      autocomplete: 'current-password', spellcheck: 'false', autocapitalize: 'off',
    });
    const submit = h('button', { type: 'submit', class: 'btn-primary' }, 'Sign in');
    const form = h('form', { class: 'form', novalidate: true },
      // Password managers file a token under a user name; the appliance has one admin.
      h('input', { type: 'text', name: 'username', autocomplete: 'username', value: 'facecv', hidden: true }),
      h('div', { class: 'field' },
        h('label', { for: 'token' }, 'API token'),
        input),
      h('p', { class: 'hint' },
        'The api.token of the appliance: printed by deploy.sh, written to facecv.txt on the SD card, ',
        'or the one the System page last rotated (in the state folder, api-token).'),
      h('div', { class: 'row' }, submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      showFieldErrors(form, null);
      const token = input.value.trim();
      if (!token) {
        showFieldErrors(form, new ApiError(0, 'validation_error', 'enter the API token', 'token'));
        return;
      }
      try {
        await busy(submit, signIn(token));
        window.dispatchEvent(new Event('facecv:signed-in'));
        ctx.navigate(next, { replace: true });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) {
          const wrong = new ApiError(401, 'invalid_token', '', 'token');
          showFieldErrors(form, new ApiError(401, 'invalid_token', explain(wrong), 'token'));
        } else {
          showFieldErrors(form, err);
        }
      }
    });
    main.append(h('section', { class: 'signin card' },
      h('h1', {}, 'Sign in to FaceCV Edge'),
      form));
    input.focus();
  },
};

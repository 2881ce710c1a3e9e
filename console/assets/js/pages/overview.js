// Overview: is the appliance well, and what happened lately.

import { api } from '../api.js';
import { h, pageHeader, errorBox, badge } from '../ui.js';

export default {
  title: 'Overview',
  async render(main) {
    main.append(pageHeader('Overview'));
    try {
      const health = await api('GET', '/health');
      main.append(h('p', {}, 'Status: ', badge(health.status, health.status === 'ok' ? 'ok' : 'warn')));
    } catch (e) {
      main.append(errorBox(e));
    }
  },
};

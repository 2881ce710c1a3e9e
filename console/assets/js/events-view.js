// How an event reads for a person, shared by the Overview and the Events pages: one line that
// says what happened, and its state as a badge.

import { h, badge } from './ui.js';

export const EVENT_TYPES = [
  ['face_recognized', 'Recognitions'],
  ['stranger_alert', 'Strangers'],
  ['attendance_recorded', 'Attendance'],
  ['face_detected', 'Faces detected'],
  ['stream_started', 'Camera started'],
  ['stream_stopped', 'Camera stopped'],
];

const ACTIONS = {
  check_in: 'checked in',
  check_out: 'checked out',
  break_in: 'started a break',
  break_out: 'ended a break',
};

const REASONS = {
  requested: 'stopped by request',
  source_lost: 'the source was lost',
  ended: 'the file ended',
  error: 'an error',
  shutdown: 'the appliance shut down',
};

function capitalFirst(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function percent(x) {
  return typeof x === 'number' ? `${Math.round(x * 100)} %` : '';
}

/** `{title, kind, label}` for an event: the sentence, the badge's colour and its word. */
export function describe(event) {
  const d = event.data || {};
  switch (event.event_type) {
    case 'face_recognized': {
      const faces = d.recognized_faces || [];
      const names = faces.map((f) => `${f.name} (${percent(f.confidence)})`).join(', ');
      return { title: names || 'someone', kind: 'ok', label: 'Recognised' };
    }
    case 'stranger_alert':
      return {
        title: `Someone not enrolled, seen in ${d.appearance_count || 1} frame${d.appearance_count === 1 ? '' : 's'}`,
        kind: d.alert_level === 'HIGH' || d.alert_level === 'CRITICAL' ? 'err' : 'warn',
        label: `Stranger${d.alert_level ? ' · ' + d.alert_level.toLowerCase() : ''}`,
      };
    case 'attendance_recorded':
      return {
        title: `${d.name || 'Someone'} ${ACTIONS[d.action] || d.action || 'was recorded'} (${percent(d.confidence)})`,
        kind: 'ok',
        label: 'Attendance',
      };
    case 'face_detected': {
      const n = d.face_count ?? (d.faces || []).length;
      return { title: `${n} face${n === 1 ? '' : 's'} in view`, kind: 'muted', label: 'Detected' };
    }
    case 'stream_started':
      return {
        title: `Source ${d.source || ''}${d.fps ? `, ${d.fps} fps` : ''}${d.restarts > 1 ? ` (came back ${d.restarts} times)` : ''}`,
        kind: 'muted',
        label: 'Camera started',
      };
    case 'stream_stopped':
      return {
        title: `${capitalFirst(REASONS[d.reason] || d.reason || 'stopped')}${d.detail ? ` (${d.detail})` : ''}`,
        kind: d.reason === 'requested' || d.reason === 'ended' || d.reason === 'shutdown' ? 'muted' : 'err',
        label: 'Camera stopped',
      };
    default:
      return { title: event.event_type, kind: 'muted', label: event.event_type };
  }
}

/** The event's badge. */
export function eventBadge(event) {
  const d = describe(event);
  return badge(d.label, d.kind);
}

/** A compact line for lists: badge, sentence, camera. */
export function eventLine(event) {
  const d = describe(event);
  return h('span', { class: 'event-line' }, badge(d.label, d.kind), ' ', h('span', {}, d.title),
    h('span', { class: 'muted' }, ` · ${event.camera_id}`));
}

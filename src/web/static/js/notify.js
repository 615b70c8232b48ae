import { t } from './strings.js';

const SETTING = 'disk2iso.browser-notifications';
const EVENTS_SETTING = 'disk2iso.browser-notification-events';
/** What a browser notifies of until its user chooses: the end of a job, as before notifications followed the domain events. */
const DEFAULT_EVENTS = ['job.completed', 'job.completed_with_errors', 'job.failed', 'job.cancelled', 'job.paused'];

const supported = () => 'Notification' in window;
const notificationsOn = () => supported() && Notification.permission === 'granted' && localStorage.getItem(SETTING) === 'on';

/** The event types this browser shows notifications for. */
function chosenEvents() {
  try {
    const stored = JSON.parse(localStorage.getItem(EVENTS_SETTING) ?? 'null');
    if (Array.isArray(stored) && stored.every((type) => typeof type === 'string')) return stored;
  } catch {
    // A value written by hand or by an older page: the defaults stand in for it.
  }
  return DEFAULT_EVENTS;
}

/** A system notification for a domain event from the live stream, if this browser was told to show that kind. */
export function notifyEvent(event, message) {
  if (notificationsOn() && chosenEvents().includes(event.type)) new Notification('disk2iso', { body: message, tag: event.id });
}

/** The switch and the event choice on the settings page: permission is asked only when the user turns it on. */
export function initNotificationSettings() {
  const box = document.querySelector('[data-browser-notifications]');
  if (!box) return;
  const enable = box.querySelector('[data-enable]');
  const disable = box.querySelector('[data-disable]');
  const state = box.querySelector('[data-state]');
  const choices = [...box.querySelectorAll('input[data-event-type]')];
  const show = () => {
    const on = notificationsOn();
    enable.hidden = on || !supported();
    disable.hidden = !on;
    if (!supported()) state.textContent = t('config.browser_notifications.unsupported');
    else if (Notification.permission === 'denied') state.textContent = t('config.browser_notifications.denied');
    else state.textContent = t(on ? 'config.browser_notifications.on' : 'config.browser_notifications.off');
  };
  const chosen = chosenEvents();
  for (const choice of choices) {
    choice.checked = chosen.includes(choice.value);
    choice.addEventListener('change', () => {
      localStorage.setItem(EVENTS_SETTING, JSON.stringify(choices.filter((each) => each.checked).map((each) => each.value)));
    });
  }
  enable.addEventListener('click', async () => {
    const permission = await Notification.requestPermission();
    localStorage.setItem(SETTING, permission === 'granted' ? 'on' : 'off');
    show();
  });
  disable.addEventListener('click', () => {
    localStorage.setItem(SETTING, 'off');
    show();
  });
  box.hidden = false;
  show();
}

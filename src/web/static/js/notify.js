import { t } from './strings.js';

const SETTING = 'disk2iso.browser-notifications';

const supported = () => 'Notification' in window;
const notificationsOn = () => supported() && Notification.permission === 'granted' && localStorage.getItem(SETTING) === 'on';

/** A system notification when a job finishes, if this browser was told to show them. */
export function notify(message) {
  if (notificationsOn()) new Notification('disk2iso', { body: message, tag: 'disk2iso-job' });
}

/** The switch on the settings page: permission is asked only when the user turns it on. */
export function initNotificationSettings() {
  const box = document.querySelector('[data-browser-notifications]');
  if (!box) return;
  const enable = box.querySelector('[data-enable]');
  const disable = box.querySelector('[data-disable]');
  const state = box.querySelector('[data-state]');
  const show = () => {
    const on = notificationsOn();
    enable.hidden = on || !supported();
    disable.hidden = !on;
    if (!supported()) state.textContent = t('config.browser_notifications.unsupported');
    else if (Notification.permission === 'denied') state.textContent = t('config.browser_notifications.denied');
    else state.textContent = t(on ? 'config.browser_notifications.on' : 'config.browser_notifications.off');
  };
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

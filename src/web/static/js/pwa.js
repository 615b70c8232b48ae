import { t } from './strings.js';

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

/** Registers the service worker (src/web/pwa/sw.js, served at /sw.js) for the whole app: installable, with an offline page. */
export function initServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {
    // Without a worker the pages work as before, only not offline and without push.
  });
}

const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

/** The VAPID public key as the bytes PushManager.subscribe wants. */
function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (character) => character.charCodeAt(0));
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken(), ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error(answer?.error?.message ?? String(response.status));
  return answer;
}

/** The account page's "Notifications on this device": asks permission only on the button, subscribes, registers the device. */
export function initPushDevices() {
  const box = document.querySelector('[data-push]');
  if (!box) return;
  const state = box.querySelector('[data-push-state]');
  const form = box.querySelector('[data-push-form]');
  const enable = box.querySelector('[data-push-enable]');
  const disable = box.querySelector('[data-push-disable]');
  box.hidden = false;
  if (!pushSupported()) {
    state.textContent = t('account.push.unsupported');
    form.hidden = true;
    return;
  }
  const show = async () => {
    const registration = await navigator.serviceWorker.getRegistration('/');
    const subscription = await registration?.pushManager.getSubscription();
    if (Notification.permission === 'denied') state.textContent = t('account.push.denied');
    else state.textContent = t(subscription ? 'account.push.state_on' : 'account.push.state_off');
    disable.hidden = !subscription;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((input) => input.value);
    if (events.length === 0) {
      state.textContent = t('account.push.no_events');
      return;
    }
    enable.disabled = true;
    state.textContent = t('account.push.state_working');
    try {
      const permission = await Notification.requestPermission();
      if (permission !== 'granted') {
        state.textContent = t('account.push.denied');
        return;
      }
      const registration = await navigator.serviceWorker.ready;
      const { public_key: key } = await api('GET', '/api/v1/notifications/push/key');
      const subscription =
        (await registration.pushManager.getSubscription()) ??
        (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) }));
      const { endpoint, keys } = subscription.toJSON();
      await api('POST', '/api/v1/notifications/push/subscriptions', {
        endpoint,
        keys,
        label: form.elements.label.value.trim() || t('account.push.label_default'),
        events,
      });
      location.reload();
    } catch (error) {
      state.textContent = t('account.push.failed', { message: error instanceof Error ? error.message : String(error) });
    } finally {
      enable.disabled = false;
    }
  });
  disable.addEventListener('click', async () => {
    const registration = await navigator.serviceWorker.getRegistration('/');
    // The push service then answers 410 to the next message, and the server forgets the device.
    await (await registration?.pushManager.getSubscription())?.unsubscribe();
    await show();
  });
  void show();
}

import { t } from './strings.js';

const SHOW_MS = { info: 6000, ok: 6000, error: 12000 };

/** A short message in the corner; the region is an ARIA live region, so screen readers announce it. */
export function toast(message, kind = 'info') {
  const region = document.getElementById('toasts');
  if (!region || !message) return;
  const item = document.createElement('div');
  item.className = `toast ${kind}`;
  const text = document.createElement('p');
  text.textContent = message;
  const close = document.createElement('button');
  close.type = 'button';
  close.textContent = t('live.dismiss');
  close.addEventListener('click', () => item.remove());
  item.append(text, close);
  region.append(item);
  setTimeout(() => item.remove(), SHOW_MS[kind] ?? SHOW_MS.info);
}

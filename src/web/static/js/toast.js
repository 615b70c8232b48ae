import { t } from './strings.js';

const SHOW_MS = { info: 6000, ok: 6000, error: 12000 };

/** How long an outcome that was shown is not shown again: a stopped job reports its end once it has actually stopped. */
const SAME_OUTCOME_MS = 120_000;
const shownOutcomes = new Map();

/**
 * A short message in the corner; the region is an ARIA live region, so screen readers announce it.
 * `subject` names the outcome (`job:<id>:cancelled`): an action's answer and the live stream both
 * report some outcomes, and the second report of one is not shown.
 */
export function toast(message, kind = 'info', subject = undefined) {
  const region = document.getElementById('toasts');
  if (!region || !message) return;
  if (subject !== undefined) {
    const now = Date.now();
    for (const [key, at] of shownOutcomes) if (now - at > SAME_OUTCOME_MS) shownOutcomes.delete(key);
    if (shownOutcomes.has(subject)) return;
    shownOutcomes.set(subject, now);
  }
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

import { fetchHtml, replaceContent, signInAgain } from './fragments.js';
import { t } from './strings.js';
import { toast } from './toast.js';

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

function setBusy(form, submitter, busy) {
  for (const button of form.querySelectorAll('button')) button.disabled = busy;
  if (!(submitter instanceof HTMLButtonElement)) return;
  submitter.setAttribute('aria-busy', String(busy));
  const busyLabel = form.dataset.busyLabel;
  if (!busyLabel) return;
  if (busy) {
    submitter.dataset.label = submitter.textContent;
    submitter.textContent = busyLabel;
  } else if (submitter.dataset.label) {
    submitter.textContent = submitter.dataset.label;
  }
}

/** Pages without live updates show an action's effect by fetching themselves again, without a reload. */
async function refreshMain() {
  const main = document.getElementById('main');
  if (!main) return;
  const html = await fetchHtml(window.location.href);
  const fresh = new DOMParser().parseFromString(html, 'text/html').getElementById('main');
  if (fresh) {
    for (const banner of fresh.querySelectorAll('[data-one-shot]')) banner.remove();
    replaceContent(main, fresh.innerHTML);
  }
}

/**
 * Forms marked data-inline are sent with fetch: the same POST a plain form makes, asking for JSON,
 * with the CSRF token also in a header. The answer becomes a toast; the page updates in place.
 */
export function initInlineActions() {
  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute('data-inline')) return;
    event.preventDefault();
    const submitter = event.submitter;
    const body = new URLSearchParams(new FormData(form, submitter));
    setBusy(form, submitter, true);
    try {
      // getAttribute: a field named "action" would shadow the form's action property.
      const response = await fetch(form.getAttribute('action') ?? window.location.href, {
        method: 'POST',
        body,
        headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken() },
        credentials: 'same-origin',
      });
      if (response.status === 401) {
        signInAgain();
        return;
      }
      const result = await response.json().catch(() => null);
      if (response.ok) toast(result?.message, 'ok', typeof result?.subject === 'string' ? result.subject : undefined);
      else toast(result?.error?.message ?? t('errors.action_failed'), 'error');
    } catch {
      toast(t('errors.action_failed'), 'error');
    } finally {
      setBusy(form, submitter, false);
    }
    form.closest('details')?.removeAttribute('open');
    form.closest('dialog')?.close();
    const live = document.querySelector('[data-live]');
    if (live) live.dispatchEvent(new CustomEvent('disk2iso:refresh'));
    else await refreshMain().catch(() => undefined);
  });
}

/**
 * A cancel link opens its confirmation in a modal dialog: the same form the confirmation page shows
 * without script, fetched from that page, sent inline. The dialog lives outside the live parts of
 * the page, so their refreshes do not close it.
 */
export function initCancelDialogs() {
  if (typeof HTMLDialogElement !== 'function') return;
  document.addEventListener('click', async (event) => {
    const link = event.target instanceof Element ? event.target.closest('a[data-cancel-dialog]') : null;
    if (!(link instanceof HTMLAnchorElement) || event.defaultPrevented || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    let content = null;
    try {
      content = new DOMParser().parseFromString(await fetchHtml(link.href), 'text/html').querySelector('[data-cancel-confirm]');
    } catch {
      content = null;
    }
    // The job may have finished meanwhile: the page itself then says why it cannot be cancelled.
    if (!content) {
      window.location.assign(link.href);
      return;
    }
    const dialog = document.createElement('dialog');
    dialog.className = 'confirm-dialog';
    const heading = content.querySelector('h1');
    if (heading?.id) dialog.setAttribute('aria-labelledby', heading.id);
    dialog.append(document.adoptNode(content));
    dialog.querySelector('form')?.setAttribute('data-inline', '');
    dialog.querySelector('[data-dialog-close]')?.addEventListener('click', (closeEvent) => {
      closeEvent.preventDefault();
      dialog.close();
    });
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (link.isConnected) link.focus();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

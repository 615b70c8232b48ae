import { signInAgain } from './fragments.js';
import { t } from './strings.js';
import { toast } from './toast.js';

/**
 * The colour scheme switch: the page changes colour at once and the choice is saved in the
 * background (the same POST the form makes without script), so the next page, on any device, is
 * rendered in it.
 */
function initThemeSwitch() {
  const form = document.querySelector('form[data-theme-form]');
  const select = form?.querySelector('select[name="theme"]');
  if (!form || !select) return;
  select.addEventListener('change', async () => {
    document.documentElement.dataset.theme = select.value;
    try {
      const response = await fetch(form.getAttribute('action') ?? '/theme', {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { Accept: 'application/json', 'X-CSRF-Token': form.querySelector('input[name="_csrf"]')?.value ?? '' },
        credentials: 'same-origin',
      });
      if (response.status === 401) signInAgain();
      else if (!response.ok) toast(t('errors.action_failed'), 'error');
    } catch {
      toast(t('errors.action_failed'), 'error');
    }
  });
}

/** Small conveniences on top of forms that work without JavaScript. */
export function initForms() {
  initThemeSwitch();

  // The language switch applies on choice; its button is for browsers without JavaScript.
  for (const select of document.querySelectorAll('select[data-autosubmit]')) {
    select.addEventListener('change', () => select.form?.requestSubmit());
  }

  // New job: the name field shows the label of the chosen disc as its default.
  const name = document.getElementById('job-name');
  if (name) {
    const fallback = name.getAttribute('placeholder') ?? '';
    const update = () => {
      const chosen = document.querySelector('input[name="device"]:checked');
      name.setAttribute('placeholder', chosen?.dataset.label || fallback);
    };
    for (const radio of document.querySelectorAll('input[name="device"]')) radio.addEventListener('change', update);
    update();
  }

  // Archive: one box selects every card on the page for a bulk action.
  const selectAll = document.querySelector('[data-select-all]');
  if (selectAll) {
    const box = selectAll.querySelector('input');
    const items = () => [...document.querySelectorAll('input[data-select-item]')];
    box.addEventListener('change', () => {
      for (const item of items()) item.checked = box.checked;
    });
    document.addEventListener('change', (event) => {
      if (event.target instanceof HTMLInputElement && event.target.hasAttribute('data-select-item')) box.checked = items().every((item) => item.checked);
    });
    selectAll.hidden = false;
  }

  // Copy buttons (a new API key, its curl line): without JavaScript they stay hidden and the text stays selectable.
  for (const button of document.querySelectorAll('button[data-copy]')) {
    const source = document.getElementById(button.dataset.copy ?? '');
    if (!source) continue;
    const label = button.textContent;
    button.addEventListener('click', async () => {
      const text = source instanceof HTMLInputElement ? source.value : (source.textContent ?? '');
      try {
        await navigator.clipboard.writeText(text);
      } catch {
        // No clipboard access (a page served over plain HTTP to another host): select the text for Ctrl+C instead.
        if (source instanceof HTMLInputElement) {
          source.select();
        } else {
          const range = document.createRange();
          range.selectNodeContents(source);
          window.getSelection()?.removeAllRanges();
          window.getSelection()?.addRange(range);
        }
        return;
      }
      button.textContent = button.dataset.copied ?? label;
      setTimeout(() => {
        button.textContent = label;
      }, 2000);
    });
    button.hidden = false;
  }

  // A notice or error from a redirect is shown once: reloading the page must not repeat it.
  const url = new URL(window.location.href);
  if (url.searchParams.has('notice') || url.searchParams.has('error')) {
    url.searchParams.delete('notice');
    url.searchParams.delete('error');
    url.searchParams.delete('notice_job');
    history.replaceState(history.state, '', `${url.pathname}${url.search}${url.hash}`);
  }
}

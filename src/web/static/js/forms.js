/** Small conveniences on top of forms that work without JavaScript. */
export function initForms() {
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

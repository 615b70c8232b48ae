// Replacing parts of the page with HTML the server renders, keeping the user's place.

/** What identifies the focused element across a re-render: its id, or its form and value. */
function focusKey(element) {
  if (!(element instanceof HTMLElement) || element === document.body) return null;
  if (element.id) return { id: element.id };
  const form = element.closest('form');
  if (form) return { action: form.getAttribute('action'), name: element.getAttribute('name'), value: element.getAttribute('value') };
  return null;
}

function findFocus(root, key) {
  if (!key) return null;
  if (key.id) return document.getElementById(key.id);
  for (const form of root.querySelectorAll('form')) {
    if (form.getAttribute('action') !== key.action) continue;
    for (const element of form.elements) {
      if (element.getAttribute('name') === key.name && element.getAttribute('value') === key.value) return element;
    }
  }
  return null;
}

/**
 * The session ended (401): loading this page again lets the server send the browser to the
 * sign-in page, and back here afterwards. A plain GET, never a resubmitted form.
 */
export function signInAgain() {
  window.location.assign(window.location.href);
}

export async function fetchHtml(url) {
  const response = await fetch(url, { headers: { Accept: 'text/html' }, credentials: 'same-origin' });
  if (response.status === 401) signInAgain();
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.text();
}

/** Replaces the element's content with the HTML, keeping focus and open <details> where they were. */
export function replaceContent(root, html) {
  const hadFocus = root.contains(document.activeElement) ? focusKey(document.activeElement) : null;
  const openDetails = [...root.querySelectorAll('details[open][id]')].map((details) => details.id);
  root.innerHTML = html;
  for (const id of openDetails) document.getElementById(id)?.setAttribute('open', '');
  findFocus(root, hadFocus)?.focus({ preventScroll: true });
}

/** Parses list items (log lines) from a fragment. */
export function parseItems(html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  return [...template.content.children];
}

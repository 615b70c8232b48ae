// The page's translated strings for scripts, put on <body data-strings> by the server.
const strings = JSON.parse(document.body.dataset.strings || '{}');

export const lang = document.documentElement.lang || 'en';

export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

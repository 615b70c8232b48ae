import assert from 'node:assert/strict';
import type { WebTestServer } from './web-server.js';

/**
 * The configuration page as a browser sees and submits it, for the walks over its settings
 * (settings-effects.test.ts on either engine, backup-settings.test.ts on the embedded one).
 */

/**
 * Fields the page offers only while the state is in the embedded SQLite file: backups copy that
 * file, and with PostgreSQL the page shows them as not applicable, without a field to change.
 */
export const EMBEDDED_ONLY_FIELDS: readonly string[] = ['backup__interval_hours', 'backup__keep_days'];

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };
const decode = (text: string): string => text.replace(/&(amp|lt|gt|quot|#39);/g, (entity) => ENTITIES[entity] ?? entity);
const attribute = (attributes: string, name: string): string | null => {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(attributes);
  return match?.[1] === undefined ? null : decode(match[1]);
};
const flag = (attributes: string, name: string): boolean => new RegExp(`\\s${name}(\\s|$|>|=)`).test(attributes);

/** A form of the page: where it posts, the names of the fields a user can change, and what a browser would send unchanged. */
export interface PageForm {
  action: string;
  names: string[];
  values: Map<string, string[]>;
}

/** The page's forms as a browser sees them: disabled fields are neither changeable nor sent, unticked boxes not sent. */
export function pageForms(html: string): PageForm[] {
  const forms: PageForm[] = [];
  for (const form of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)) {
    const action = attribute(form[1] ?? '', 'action') ?? '';
    const names = new Set<string>();
    const values = new Map<string, string[]>();
    const add = (name: string, value: string | null): void => {
      if (value !== null) values.set(name, [...(values.get(name) ?? []), value]);
    };
    const body = form[2] ?? '';
    for (const input of body.matchAll(/<input\b([^>]*)>/g)) {
      const attributes = input[1] ?? '';
      const name = attribute(attributes, 'name');
      if (name === null || name === '_csrf' || flag(attributes, 'disabled')) continue;
      names.add(name);
      const type = attribute(attributes, 'type') ?? 'text';
      if (type === 'checkbox') add(name, flag(attributes, 'checked') ? (attribute(attributes, 'value') ?? 'on') : null);
      else add(name, attribute(attributes, 'value') ?? '');
    }
    for (const select of body.matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select>/g)) {
      const name = attribute(select[1] ?? '', 'name');
      if (name === null || flag(select[1] ?? '', 'disabled')) continue;
      names.add(name);
      const selected = [...(select[2] ?? '').matchAll(/<option\b([^>]*)>/g)].find((option) => flag(option[1] ?? '', 'selected'));
      add(name, attribute(selected?.[1] ?? '', 'value'));
    }
    forms.push({ action, names: [...names], values });
  }
  return forms;
}

/** Saves a settings form as a browser submits it, with `changes` on top of what the page shows (true/false: tick or untick). */
export async function saveConfigForm(
  server: Pick<WebTestServer, 'send'>,
  section: string,
  changes: Record<string, string | string[] | boolean>,
): Promise<void> {
  const form = pageForms((await server.send('GET', '/config')).body).find((candidate) => candidate.action === `/config/${section}`);
  assert.ok(form !== undefined, `no form for ${section}`);
  const values: Record<string, string[]> = Object.fromEntries(form.values);
  for (const [name, value] of Object.entries(changes)) {
    assert.ok(form.names.includes(name), `${name} is not a field of ${section}`);
    if (value === false) delete values[name];
    else values[name] = value === true ? ['1'] : Array.isArray(value) ? value : [value];
  }
  const saved = await server.send('POST', `/config/${section}`, { form: values });
  assert.equal(saved.status, 303, saved.body.slice(0, 500));
  assert.match(saved.location ?? '', /notice=settings_(saved|unchanged)/);
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type WebTestServer, startWebTestServer } from '../support/server.js';

/** The text of a field's error paragraph (`<p class="field-error" id="…">`), or null when the page has none. */
function fieldError(body: string, id: string): string | null {
  const match = new RegExp(`<p class="field-error" id="${id}">([^<]*)</p>`).exec(body);
  return match?.[1] ?? null;
}

/** The opening tag of the element with this id. */
function tagOf(body: string, id: string): string {
  const match = new RegExp(`<(?:input|select|textarea)[^>]*\\bid="${id}"[^>]*>`).exec(body);
  assert.ok(match, `the page has an element #${id}`);
  return match[0];
}

describe('forms show every refusal at its field', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  const storageForm = (changes: Record<string, string>) => ({
    storage__output_dir: server.config.storage.output_dir,
    storage__log_retention_days: String(server.config.storage.log_retention_days),
    storage__warn_threshold_percent: String(server.config.storage.warn_threshold_percent),
    storage__stop_threshold_percent: String(server.config.storage.stop_threshold_percent),
    ...changes,
  });

  it('says why an output folder outside the allowed ones is refused, with the folders allowed', async () => {
    const refused = await server.send('POST', '/config/storage', { form: storageForm({ storage__output_dir: '/etc' }) });
    assert.equal(refused.status, 400);
    const message = fieldError(refused.body, 'setting-storage__output_dir-error') ?? '';
    assert.ok(message.includes('Images may only go to the data folder'), `the field says why: ${message}`);
    assert.ok(message.includes(`Allowed: ${server.config.data_dir}.`), `the field names the folders allowed: ${message}`);
    const input = tagOf(refused.body, 'setting-storage__output_dir');
    assert.match(input, /aria-invalid="true"/);
    assert.match(input, /aria-describedby="[^"]*setting-storage__output_dir-error/);
    assert.match(input, /value="\/etc"/, 'what the user typed is shown again');
    assert.notEqual(server.config.storage.output_dir, '/etc', 'nothing saved');

    const german = await server.send('POST', '/config/storage', { form: storageForm({ storage__output_dir: '/etc' }), lang: 'de' });
    assert.match(fieldError(german.body, 'setting-storage__output_dir-error') ?? '', /^Images dürfen nur in den Datenordner .* Erlaubt: /);
  });

  it('refuses a warning threshold at or above the stop threshold, at the field, through the page and the API', async () => {
    const refused = await server.send('POST', '/config/storage', { form: storageForm({ storage__warn_threshold_percent: '96' }) });
    assert.equal(refused.status, 400);
    assert.equal(
      fieldError(refused.body, 'setting-storage__warn_threshold_percent-error'),
      'Must be below “Pause imaging when storage is this full (%)” (now 95).',
    );
    assert.match(tagOf(refused.body, 'setting-storage__warn_threshold_percent'), /aria-invalid="true"/);
    assert.equal(server.config.storage.warn_threshold_percent, 90, 'nothing saved');

    const lowered = await server.send('POST', '/config/storage', { form: storageForm({ storage__stop_threshold_percent: '90' }) });
    assert.equal(lowered.status, 400);
    assert.match(fieldError(lowered.body, 'setting-storage__stop_threshold_percent-error') ?? '', /^Must be above “.*” \(now 90\)\.$/);

    const api = await server.app.inject({
      method: 'PATCH',
      url: '/api/v1/system/config',
      headers: { cookie: server.sessions.admin.cookie, 'x-csrf-token': server.sessions.admin.csrf, origin: 'http://localhost:80' },
      payload: { storage: { warn_threshold_percent: 95 } },
    });
    assert.equal(api.statusCode, 400, api.body);
    assert.equal(api.json().error.code, 'setting_order');
    assert.equal(server.config.storage.warn_threshold_percent, 90);
  });

  it('shows every refusal of one submission at once: the form’s own and the service’s', async () => {
    const refused = await server.send('POST', '/config/storage', {
      form: storageForm({ storage__output_dir: '/etc', storage__log_retention_days: '0', storage__warn_threshold_percent: '99' }),
    });
    assert.equal(refused.status, 400);
    assert.match(fieldError(refused.body, 'setting-storage__log_retention_days-error') ?? '', /^Enter a whole number from 1 to 3650\.$/);
    assert.match(fieldError(refused.body, 'setting-storage__output_dir-error') ?? '', /^Images may only go/);
    assert.match(fieldError(refused.body, 'setting-storage__warn_threshold_percent-error') ?? '', /^Must be below/);
    assert.match(refused.body, /role="alert">Some fields need your attention/);
  });
});

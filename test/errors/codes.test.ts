import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AuthenticationError, PasswordChangeRequiredError } from '../../src/auth/errors.js';
import { ERROR_CODES } from '../../src/error-codes.js';
import { ConflictError, ForbiddenError, NotFoundError, UnauthenticatedError, UnavailableError, ValidationError } from '../../src/errors.js';
import { LANGUAGES, allCatalogs } from '../../src/web/i18n.js';

/** Keys under `errors.` that are page texts and fallbacks, not codes: titles, the link back, and the messages chosen by status alone. */
const PAGE_KEYS = ['title', 'not_found_title', 'forbidden_title', 'forbidden_role', 'page_not_found', 'back', 'generic', 'action_failed', 'internal'];

const sourceRoot = join(import.meta.dirname, '..', '..', '..', 'src');

async function sourceFiles(): Promise<string[]> {
  const entries = await readdir(sourceRoot, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile() && entry.name.endsWith('.ts')).map((entry) => join(entry.parentPath, entry.name));
}

describe('error codes', () => {
  it('are listed once each', () => {
    assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
  });

  it('every code has a message in every language', () => {
    const catalogs = allCatalogs();
    for (const language of LANGUAGES) {
      const missing = ERROR_CODES.filter((code) => !catalogs[language].has(`errors.${code}`));
      assert.deepEqual(missing, [], `${language} has no message for these codes`);
    }
  });

  it('every message under errors belongs to a code or is a page text', () => {
    const known = new Set<string>([...ERROR_CODES, ...PAGE_KEYS]);
    for (const language of LANGUAGES) {
      const keys = [...allCatalogs()[language].keys()].filter((key) => key.startsWith('errors.')).map((key) => key.slice('errors.'.length));
      assert.deepEqual(
        keys.filter((key) => !known.has(key)),
        [],
        `${language} has messages for codes that do not exist`,
      );
    }
  });

  it('error bodies written by hand use codes from the set', async () => {
    const known = new Set<string>(ERROR_CODES);
    const found: string[] = [];
    for (const file of await sourceFiles()) {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/error: \{ code: '([a-z_]+)'/g)) found.push(`${match[1]} (${file})`);
    }
    assert.ok(found.length >= 3, `found only ${found.length} hand-written error bodies; the scan is broken`);
    assert.deepEqual(
      found.filter((entry) => !known.has(entry.split(' ')[0] as string)),
      [],
    );
  });

  it('every constructor takes code, message, details in that order', () => {
    const details = { field: 'name' };
    for (const error of [
      new ValidationError('invalid_name', 'bad name', details),
      new NotFoundError('job_not_found', 'bad name', details),
      new ConflictError('job_busy', 'bad name', details),
      new ForbiddenError('permission_denied', 'bad name', details),
      new UnauthenticatedError('unauthenticated', 'bad name', details),
      new UnavailableError('device_gone', 'bad name', details),
    ]) {
      assert.deepEqual([error.message, error.details], ['bad name', details], error.name);
    }
    assert.deepEqual(
      [new ValidationError('invalid_name', 'x').code, new ForbiddenError('csrf_failed', 'x').code, new NotFoundError('job_not_found', 'x').code],
      ['invalid_name', 'csrf_failed', 'job_not_found'],
    );
    assert.equal(new AuthenticationError('wrong_password', 'The current password is wrong').code, 'wrong_password');
    assert.equal(new AuthenticationError().code, 'invalid_credentials');
    assert.equal(new PasswordChangeRequiredError().code, 'password_change_required');
  });

  it('a misspelt code does not compile', () => {
    // @ts-expect-error 'job_not_fonud' is not in ERROR_CODES; if this compiles, codes are plain strings again.
    const misspelt = new NotFoundError('job_not_fonud', 'x');
    assert.equal(misspelt.code, 'job_not_fonud');
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BCRYPT_COST, DUMMY_PASSWORD_HASH, assertPasswordPolicy, bcryptHasher, hashCost, passwordProblems } from '../../src/auth/password.js';
import { ValidationError } from '../../src/errors.js';

describe('password policy', () => {
  const cases: Array<{ password: string; broken: string[] }> = [
    { password: 'Correct-horse-7', broken: [] },
    { password: 'Abcdefghijk1', broken: [] },
    { password: 'Äöüßäöüßäöü1', broken: [] },
    { password: 'Abcdefghij1', broken: ['min_length'] },
    { password: '', broken: ['min_length', 'uppercase', 'lowercase', 'digit'] },
    { password: 'abcdefghijk1', broken: ['uppercase'] },
    { password: 'ABCDEFGHIJK1', broken: ['lowercase'] },
    { password: 'Abcdefghijkl', broken: ['digit'] },
    { password: 'Abcdefghijk1\n', broken: ['no_control'] },
    { password: 'Abcdefghijk1\u0000', broken: ['no_control'] },
    { password: `Ab1${'x'.repeat(69)}`, broken: [] },
    { password: `Ab1${'x'.repeat(70)}`, broken: ['max_bytes'] },
    // 24 three-byte characters are 72 bytes; the letter and digit push it over.
    { password: `Ab1${'€'.repeat(24)}`, broken: ['max_bytes'] },
  ];
  for (const { password, broken } of cases) {
    it(`${JSON.stringify(password.length > 20 ? `${password.slice(0, 12)}…(${password.length})` : password)} breaks ${broken.join(', ') || 'nothing'}`, () => {
      assert.deepEqual(
        passwordProblems(password).map((problem) => problem.rule),
        broken,
      );
      if (broken.length === 0) assertPasswordPolicy(password);
      else assert.throws(() => assertPasswordPolicy(password), ValidationError);
    });
  }

  it('names every broken rule in one message a person can act on', () => {
    assert.throws(
      () => assertPasswordPolicy('short'),
      (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.code, 'weak_password');
        assert.equal(error.message, 'Password must be at least 12 characters long; must contain an upper-case letter; must contain a digit');
        assert.deepEqual(
          (error.details as Array<{ rule: string }>).map((detail) => detail.rule),
          ['min_length', 'uppercase', 'digit'],
        );
        return true;
      },
    );
  });

  it('hashes with bcrypt at cost 12, recorded in the hash, and checks against it', async () => {
    const hash = await bcryptHasher.hash('Correct-horse-7');
    assert.equal(BCRYPT_COST, 12);
    assert.match(hash, /^\$2b\$12\$/);
    assert.equal(hashCost(hash), 12);
    assert.equal(await bcryptHasher.verify('Correct-horse-7', hash), true);
    assert.equal(await bcryptHasher.verify('Correct-horse-8', hash), false);
  });

  it('keeps a cost-12 dummy hash for unknown names that no policy-conforming password matches', async () => {
    assert.equal(hashCost(DUMMY_PASSWORD_HASH), 12);
    assert.equal(await bcryptHasher.verify('Correct-horse-7', DUMMY_PASSWORD_HASH), false);
  });
});

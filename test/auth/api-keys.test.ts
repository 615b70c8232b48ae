import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sql } from 'kysely';
import { type Actor, requestActor } from '../../src/auth/principal.js';
import { secretHash } from '../../src/auth/secrets.js';
import { type AuthService, createAuthService } from '../../src/auth/service.js';
import type { Database } from '../../src/db/database.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../src/errors.js';
import { openAgain } from '../support/database.js';
import { ADMIN_PASSWORD, CLI, CLIENT, DAY, HOUR, MINUTE, USER_PASSWORD, withAuth } from './support.js';

/** The text of every row of every table of `database`, on either engine. */
async function everythingStored(database: Database): Promise<string> {
  const tables = await database.kysely.introspection.getTables();
  assert.ok(tables.some((table) => table.name === 'api_keys'));
  const rows: string[] = [];
  for (const table of tables) {
    // Every schema's (on PostgreSQL also pg-boss's): the key must be in none of them.
    const all = await sql`select * from ${sql.table(table.schema === undefined ? table.name : `${table.schema}.${table.name}`)}`.execute(database.kysely);
    rows.push(JSON.stringify(all.rows));
  }
  return rows.join('\n');
}

describe('API keys', () => {
  it('creates a d2i_ key of 256 random bits, shows it once and keeps only its hash and a short prefix', async () => {
    await withAuth(async ({ auth, database }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { key, record } = await auth.apiKeys.create({ user: 'alice', name: 'backup script', scopes: ['jobs:read'] }, CLI);
      assert.match(key, /^d2i_[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(key.slice(4), 'base64url').length, 32);
      assert.match(record.id, /^key_[0-9a-f]{20}$/);
      assert.equal(record.prefix, key.slice(0, 12));
      assert.equal(record.userName, 'alice');
      assert.deepEqual(record.scopes, ['jobs:read']);
      assert.equal(record.createdBy, 'cli:tester');
      assert.equal('key' in record, false);
      assert.ok(!JSON.stringify(await auth.apiKeys.list({}, CLI)).includes(key.slice(12)), 'listings never carry the secret');

      const row = await database.kysely.selectFrom('api_keys').selectAll().executeTakeFirstOrThrow();
      assert.equal(row.key_hash, secretHash(key));
      // Every row of every table (test/auth/api-keys-file.test.ts reads SQLite's files byte by byte): neither the key nor its secret part is in there.
      const stored = await everythingStored(database);
      const secret = Buffer.from(key.slice(4), 'base64url');
      for (const form of [key, key.slice(12), secret.toString('hex'), secret.toString('base64')]) assert.equal(stored.includes(form), false);
      assert.equal(stored.includes(row.key_hash), true, 'the check itself reads the right rows');
    });
  });

  it("authenticates with the owner's rights narrowed to the scopes, and without scopes with all of them", async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const scoped = await auth.apiKeys.create({ user: 'alice', name: 'reader', scopes: ['jobs:read', 'archives:read'] }, CLI);
      const full = await auth.apiKeys.create({ user: 'alice', name: 'all' }, CLI);

      const reader = await auth.authenticateRequest({ apiKeyHeader: scoped.key });
      assert.ok(reader);
      assert.equal(reader.kind, 'api_key');
      assert.equal(reader.via, 'api_key');
      assert.equal(reader.apiKeyId, scoped.record.id);
      assert.deepEqual([...reader.permissions], ['jobs:read', 'archives:read']);
      assert.equal(reader.can('jobs:write'), false);

      const all = await auth.authenticateRequest({ apiKeyHeader: full.key });
      assert.deepEqual([...(all?.permissions ?? [])].sort(), [
        'archives:read',
        'devices:read',
        'devices:write',
        'jobs:read',
        'jobs:write',
        'keys:manage',
        'metrics:read',
        'system:read',
      ]);

      for (const wrong of ['', 'd2i_', full.key.slice(0, -1), `${full.key}x`, full.key.replace('d2i_', 'd2x_'), `d2i_${'A'.repeat(43)}`]) {
        assert.equal(await auth.authenticateRequest({ apiKeyHeader: wrong }), null, JSON.stringify(wrong));
      }
    });
  });

  it("refuses scopes beyond the owner's role, unknown scopes, an empty list and past expiry dates", async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'vera', role: 'viewer', password: USER_PASSWORD }, CLI);
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: 'k', scopes: ['jobs:read', 'jobs:write'] }, CLI), (error: unknown) => {
        assert.ok(error instanceof ValidationError);
        assert.equal(error.code, 'scope_exceeds_rights');
        assert.equal(error.message, 'Scope(s) jobs:write exceed the rights of viewer vera');
        return true;
      });
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: 'k', scopes: ['jobs:read', 'root'] }, CLI), { code: 'invalid_scopes' });
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: 'k', scopes: [] }, CLI), { code: 'invalid_scopes' });
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: '  ', scopes: null }, CLI), { code: 'invalid_api_key_name' });
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: 'k', expiresAt: clock.now() }, CLI), { code: 'invalid_expiry' });
      await assert.rejects(auth.apiKeys.create({ user: 'nobody', name: 'k' }, CLI), NotFoundError);
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.disable('vera', CLI);
      await assert.rejects(auth.apiKeys.create({ user: 'vera', name: 'k' }, CLI), ConflictError);
    });
  });

  it('loses what its owner loses: demoted owner, disabled owner', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'olga', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      const scoped = await auth.apiKeys.create({ user: 'olga', name: 'ops', scopes: ['jobs:write', 'users:admin'] }, CLI);
      const full = await auth.apiKeys.create({ user: 'olga', name: 'all' }, CLI);
      assert.equal((await auth.authenticateRequest({ apiKeyHeader: full.key }))?.can('system:write'), true);

      await auth.users.setRole('olga', 'operator', CLI);
      assert.deepEqual([...((await auth.authenticateRequest({ apiKeyHeader: scoped.key }))?.permissions ?? [])], ['jobs:write']);
      const demoted = await auth.authenticateRequest({ apiKeyHeader: full.key });
      assert.equal(demoted?.can('system:write'), false);
      assert.equal(demoted?.can('users:admin'), false);
      assert.equal(demoted?.can('jobs:write'), true);

      await auth.users.disable('olga', CLI);
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: full.key }), null);
      await auth.users.enable('olga', CLI);
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: full.key }), 'the key was never revoked, only unusable while disabled');
    });
  });

  it('is refused from the next request on when another process revokes it, disables or demotes its owner', async () => {
    await withAuth(async ({ auth, database, dir, clock }) => {
      await auth.users.add({ name: 'alice', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      // A second admin, so alice is not the last one and may be demoted and disabled.
      await auth.users.add({ name: 'root', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      const first = await auth.apiKeys.create({ user: 'alice', name: 'one' }, CLI);
      const second = await auth.apiKeys.create({ user: 'alice', name: 'two' }, CLI);
      // The CLI is another process with its own connection and its own services.
      const other = await openAgain(database);
      try {
        const cli = createAuthService({ database: other, dataDir: dir, now: clock.now });
        assert.equal((await auth.authenticateRequest({ apiKeyHeader: first.key }))?.can('users:admin'), true);
        assert.ok(await auth.authenticateRequest({ apiKeyHeader: second.key }));

        await cli.users.setRole('alice', 'viewer', CLI);
        const demoted = await auth.authenticateRequest({ apiKeyHeader: first.key });
        assert.equal(demoted?.can('users:admin'), false);
        assert.equal(demoted?.can('jobs:read'), true);

        await cli.apiKeys.revoke(first.record.id, CLI);
        assert.equal(await auth.authenticateRequest({ apiKeyHeader: first.key }), null);
        assert.ok(await auth.authenticateRequest({ apiKeyHeader: second.key }));

        await cli.users.disable('alice', CLI);
        assert.equal(await auth.authenticateRequest({ apiKeyHeader: second.key }), null);
      } finally {
        await other.close();
      }
    });
  });

  it('stops working at its expiry and when revoked; revoking twice is a conflict', async () => {
    await withAuth(async ({ auth, clock, auditEntries }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const expiring = await auth.apiKeys.create({ user: 'alice', name: 'day', expiresAt: new Date(clock.now().getTime() + DAY) }, CLI);
      const revocable = await auth.apiKeys.create({ user: 'alice', name: 'rev' }, CLI);

      clock.advance(DAY - 1);
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: expiring.key }));
      clock.advance(1);
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: expiring.key }), null);

      assert.ok(await auth.authenticateRequest({ apiKeyHeader: revocable.key }));
      const { record: revoked } = await auth.apiKeys.revoke(revocable.record.id, CLI);
      assert.equal(revoked.revokedAt, clock.now().toISOString());
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: revocable.key }), null);
      await assert.rejects(auth.apiKeys.revoke(revocable.record.id, CLI), ConflictError);
      await assert.rejects(auth.apiKeys.revoke('key_unknown', CLI), NotFoundError);

      const entries = await auditEntries({ eventType: 'api_key' });
      assert.deepEqual(
        entries.map((entry) => [entry.action, entry.user, entry.details.key_id, entry.details.owner]),
        [
          ['create', 'cli:tester', expiring.record.id, 'alice'],
          ['create', 'cli:tester', revocable.record.id, 'alice'],
          ['revoke', 'cli:tester', revocable.record.id, 'alice'],
        ],
      );
      assert.ok(!JSON.stringify(entries).includes(revocable.key.slice(12)), 'the audit trail never holds a key');
    });
  });

  it('records the last use, at most once a minute', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const { key, record } = await auth.apiKeys.create({ user: 'alice', name: 'k' }, CLI);
      const lastUsed = async () => (await auth.apiKeys.list({ user: 'alice' }, CLI)).find((entry) => entry.id === record.id)?.lastUsedAt;
      assert.equal(await lastUsed(), null);
      const first = clock.now().toISOString();
      await auth.authenticateRequest({ apiKeyHeader: key });
      assert.equal(await lastUsed(), first);
      clock.advance(59_000);
      await auth.authenticateRequest({ apiKeyHeader: key });
      assert.equal(await lastUsed(), first, 'not written again within the minute');
      clock.advance(2_000);
      await auth.authenticateRequest({ apiKeyHeader: key });
      assert.equal(await lastUsed(), clock.now().toISOString());
    });
  });

  it("lets users manage their own keys, admins everyone's, and never lets a key mint a stronger key", async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await auth.users.add({ name: 'bob', role: 'operator', password: USER_PASSWORD }, CLI);
      const alice = requestActor((await auth.login('alice', USER_PASSWORD, CLIENT)).principal, CLIENT);
      const admin = requestActor((await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal, CLIENT);

      const own = await auth.apiKeys.create({ user: 'alice', name: 'mine', scopes: ['jobs:read', 'keys:manage'] }, alice);
      assert.equal(own.record.createdBy, 'alice');
      const bobs = await auth.apiKeys.create({ user: 'bob', name: 'for bob' }, admin);
      await assert.rejects(auth.apiKeys.create({ user: 'bob', name: 'not mine' }, alice), ForbiddenError);
      await assert.rejects(auth.apiKeys.list({ user: 'bob' }, alice), ForbiddenError);
      await assert.rejects(auth.apiKeys.list({}, alice), ForbiddenError);
      await assert.rejects(auth.apiKeys.revoke(bobs.record.id, alice), ForbiddenError);
      assert.deepEqual(
        (await auth.apiKeys.list({ user: 'alice' }, alice)).map((key) => key.name),
        ['mine'],
      );
      assert.equal((await auth.apiKeys.list({}, admin)).length, 2);

      const keyPrincipal = await auth.authenticateRequest({ apiKeyHeader: own.key });
      assert.ok(keyPrincipal);
      const keyActor = requestActor(keyPrincipal, CLIENT);
      await assert.rejects(auth.apiKeys.create({ user: 'alice', name: 'escalate' }, keyActor), ForbiddenError);
      await assert.rejects(auth.apiKeys.create({ user: 'alice', name: 'escalate', scopes: ['jobs:write'] }, keyActor), ForbiddenError);
      await auth.apiKeys.create({ user: 'alice', name: 'same rights', scopes: ['jobs:read', 'keys:manage'] }, keyActor);
      await auth.apiKeys.revoke(own.record.id, alice);
    });
  });

  it('lists keys newest first with their state', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const first = await auth.apiKeys.create({ user: 'alice', name: 'first' }, CLI);
      clock.advance(MINUTE);
      await auth.apiKeys.create({ user: 'alice', name: 'second', expiresAt: new Date(clock.now().getTime() + MINUTE) }, CLI);
      await auth.apiKeys.revoke(first.record.id, CLI);
      const listed = await auth.apiKeys.list({ user: 'alice' }, CLI);
      assert.deepEqual(
        listed.map((key) => [key.name, key.revokedAt !== null, key.expiresAt]),
        [
          ['second', false, '2026-01-15T10:02:00.000Z'],
          ['first', true, null],
        ],
      );
    });
  });
});

/** The request of a key (or of a bearer token) as the HTTP layer hands it to the services. */
async function keyActor(auth: AuthService, credentials: { apiKeyHeader: string } | { bearer: string }): Promise<Actor> {
  const principal = await auth.authenticateRequest(credentials);
  assert.ok(principal, 'the credential works');
  return requestActor(principal, CLIENT);
}

describe('API keys made with a key or a bearer token never exceed or outlive it', () => {
  it('needs keys:manage to create, list or revoke keys through a key; a signed-in user holds it by role', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const full = await auth.apiKeys.create({ user: 'alice', name: 'full' }, CLI);
      const reader = await auth.apiKeys.create({ user: 'alice', name: 'reader', scopes: ['jobs:read'], expiresAt: new Date(clock.now().getTime() + DAY) }, CLI);
      const readerActor = await keyActor(auth, { apiKeyHeader: reader.key });

      const refused = { code: 'permission_denied', message: 'alice lacks the keys:manage permission' };
      await assert.rejects(
        auth.apiKeys.create({ user: 'alice', name: 'minted', scopes: ['jobs:read'], expiresAt: new Date(clock.now().getTime() + HOUR) }, readerActor),
        refused,
      );
      await assert.rejects(auth.apiKeys.list({ user: 'alice' }, readerActor), refused);
      await assert.rejects(auth.apiKeys.revoke(full.record.id, readerActor), refused);
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: full.key }), 'the full-rights key still works');
      assert.deepEqual((await auth.apiKeys.list({ user: 'alice' }, CLI)).map((key) => key.name).sort(), ['full', 'reader'], 'nothing was created');

      const session = requestActor((await auth.login('alice', USER_PASSWORD, CLIENT)).principal, CLIENT);
      const made = await auth.apiKeys.create({ user: 'alice', name: 'from the web' }, session);
      assert.equal(made.record.parentId, null);
      assert.equal(made.record.expiresAt, null, 'a signed-in user may still make a key that never expires');
    });
  });

  it('creates with a key only keys for its own user, with explicit scopes it holds, expiring no later than itself', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'bob', role: 'viewer', password: USER_PASSWORD }, CLI);
      const day = new Date(clock.now().getTime() + DAY);
      const parent = await auth.apiKeys.create({ user: 'admin', name: 'automation', scopes: ['jobs:read', 'keys:manage', 'users:admin'], expiresAt: day }, CLI);
      const actor = await keyActor(auth, { apiKeyHeader: parent.key });

      const tooLong = { code: 'expiry_exceeds_credential', message: `The key must expire no later than the credential creating it, at ${day.toISOString()}` };
      await assert.rejects(auth.apiKeys.create({ user: 'admin', name: 'forever', scopes: ['jobs:read'] }, actor), tooLong);
      await assert.rejects(
        auth.apiKeys.create({ user: 'admin', name: 'later', scopes: ['jobs:read'], expiresAt: new Date(day.getTime() + 1) }, actor),
        tooLong,
      );
      await assert.rejects(auth.apiKeys.create({ user: 'admin', name: 'wider', scopes: ['jobs:write'], expiresAt: day }, actor), {
        code: 'scope_exceeds_rights',
      });
      await assert.rejects(auth.apiKeys.create({ user: 'admin', name: 'all', scopes: null, expiresAt: day }, actor), { code: 'scope_exceeds_rights' });
      await assert.rejects(auth.apiKeys.create({ user: 'bob', name: 'for bob', scopes: ['jobs:read'], expiresAt: day }, actor), { code: 'key_for_other_user' });

      const child = await auth.apiKeys.create({ user: 'admin', name: 'child', scopes: ['jobs:read'], expiresAt: day }, actor);
      assert.equal(child.record.parentId, parent.record.id);
      assert.equal(child.record.expiresAt, day.toISOString());
      assert.deepEqual((await auth.apiKeys.list({}, CLI)).map((key) => key.name).sort(), ['automation', 'child'], 'only the child was created');
      const [created] = (await auth.audit.list({ eventType: 'api_key', action: 'create', order: 'desc', limit: 1 })).items;
      assert.equal(created?.details.parent_id, parent.record.id);
      assert.equal(created?.details.api_key_id, parent.record.id);
    });
  });

  it("bounds the keys a bearer token creates by the token's expiry and scope, a key's token by its key too", async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const password = await auth.tokens.issueForPassword('alice', USER_PASSWORD, CLIENT);
      const passwordActor = await keyActor(auth, { bearer: password.token });
      const tokenLimit = {
        code: 'expiry_exceeds_credential',
        message: `The key must expire no later than the credential creating it, at ${password.expiresAt}`,
      };
      await assert.rejects(auth.apiKeys.create({ user: 'alice', name: 'forever', scopes: ['jobs:read'] }, passwordActor), tokenLimit);
      await assert.rejects(
        auth.apiKeys.create({ user: 'alice', name: 'a day', scopes: ['jobs:read'], expiresAt: new Date(clock.now().getTime() + DAY) }, passwordActor),
        tokenLimit,
      );
      const short = await auth.apiKeys.create({ user: 'alice', name: 'short', scopes: ['jobs:read'], expiresAt: new Date(password.expiresAt) }, passwordActor);
      assert.equal(short.record.parentId, null, 'a password token is no key to hang it on');

      const key = await auth.apiKeys.create(
        { user: 'alice', name: 'ci', scopes: ['jobs:read', 'jobs:write', 'keys:manage'], expiresAt: new Date(clock.now().getTime() + DAY) },
        CLI,
      );
      const keyToken = await auth.tokens.issueForApiKey(key.key, CLIENT);
      const keyTokenActor = await keyActor(auth, { bearer: keyToken.token });
      await assert.rejects(
        auth.apiKeys.create(
          { user: 'alice', name: 'as long as the key', scopes: ['jobs:read'], expiresAt: new Date(clock.now().getTime() + DAY) },
          keyTokenActor,
        ),
        { code: 'expiry_exceeds_credential' },
      );
      await assert.rejects(
        auth.apiKeys.create({ user: 'alice', name: 'wider', scopes: ['devices:write'], expiresAt: new Date(keyToken.expiresAt) }, keyTokenActor),
        { code: 'scope_exceeds_rights' },
      );
      const child = await auth.apiKeys.create(
        { user: 'alice', name: 'token child', scopes: ['jobs:write'], expiresAt: new Date(keyToken.expiresAt) },
        keyTokenActor,
      );
      assert.equal(child.record.parentId, key.record.id, "a key's token hangs its keys on the key");
    });
  });

  it('revokes every key made with a key along with it, from the next request on in another process too', async () => {
    await withAuth(async ({ auth, database, dir, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const week = new Date(clock.now().getTime() + 7 * DAY);
      const parent = await auth.apiKeys.create({ user: 'alice', name: 'parent', scopes: ['jobs:read', 'keys:manage'], expiresAt: week }, CLI);
      const unrelated = await auth.apiKeys.create({ user: 'alice', name: 'unrelated', scopes: ['jobs:read', 'keys:manage'], expiresAt: week }, CLI);
      const child = await auth.apiKeys.create(
        { user: 'alice', name: 'child', scopes: ['jobs:read', 'keys:manage'], expiresAt: week },
        await keyActor(auth, { apiKeyHeader: parent.key }),
      );
      clock.advance(MINUTE);
      const grandchild = await auth.apiKeys.create(
        { user: 'alice', name: 'grandchild', scopes: ['jobs:read'], expiresAt: week },
        await keyActor(auth, { apiKeyHeader: child.key }),
      );
      const cousin = await auth.apiKeys.create(
        { user: 'alice', name: 'cousin', scopes: ['jobs:read'], expiresAt: week },
        await keyActor(auth, { apiKeyHeader: unrelated.key }),
      );
      const grandchildToken = await auth.tokens.issueForApiKey(grandchild.key, CLIENT);
      // This process has looked every key up and remembers them.
      for (const key of [child.key, grandchild.key, cousin.key]) assert.ok(await auth.authenticateRequest({ apiKeyHeader: key }));

      // The CLI is another process with its own connection and its own services.
      const other = await openAgain(database);
      try {
        const cli = createAuthService({ database: other, dataDir: dir, now: clock.now });
        const revoked = await cli.apiKeys.revoke(parent.record.id, CLI);
        assert.deepEqual(revoked.alsoRevoked, [child.record.id, grandchild.record.id]);
      } finally {
        await other.close();
      }
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: child.key }), null, 'the child');
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: grandchild.key }), null, 'the grandchild');
      assert.equal(await auth.authenticateRequest({ bearer: grandchildToken.token }), null, "the grandchild's token");
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: cousin.key }), 'a key made with another key stays');
      assert.ok(await auth.authenticateRequest({ apiKeyHeader: unrelated.key }));

      const [entry] = (await auth.audit.list({ eventType: 'api_key', action: 'revoke', order: 'asc' })).items;
      assert.deepEqual(entry?.details.also_revoked, [child.record.id, grandchild.record.id]);
      const states = new Map((await auth.apiKeys.list({ user: 'alice' }, CLI)).map((key) => [key.name, key.revokedAt]));
      assert.deepEqual(
        [...states.entries()]
          .filter(([, revokedAt]) => revokedAt !== null)
          .map(([name]) => name)
          .sort(),
        ['child', 'grandchild', 'parent'],
      );
    });
  });

  it('refuses a child when its parent was revoked after the request was authenticated', async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const parent = await auth.apiKeys.create({ user: 'alice', name: 'parent', scopes: ['jobs:read', 'keys:manage'], expiresAt }, CLI);
      const actor = await keyActor(auth, { apiKeyHeader: parent.key });
      // Another request revokes the key while this one is still on its way to the database.
      await auth.apiKeys.revoke(parent.record.id, CLI);
      await assert.rejects(auth.apiKeys.create({ user: 'alice', name: 'late child', scopes: ['jobs:read'], expiresAt }, actor), {
        code: 'invalid_credentials',
      });
      assert.deepEqual(
        (await auth.apiKeys.list({ user: 'alice' }, CLI)).map((key) => key.name),
        ['parent'],
      );
    });
  });

  it('leaves no live child under a parent revoked at the same moment through another connection', async () => {
    await withAuth(async ({ auth, database, dir, clock }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const expiresAt = new Date(clock.now().getTime() + DAY);
      const other = await openAgain(database);
      try {
        const elsewhere = createAuthService({ database: other, dataDir: dir, now: clock.now });
        for (let round = 0; round < 10; round += 1) {
          const parent = await auth.apiKeys.create({ user: 'alice', name: `parent-${round}`, scopes: ['jobs:read', 'keys:manage'], expiresAt }, CLI);
          const actor = await keyActor(auth, { apiKeyHeader: parent.key });
          const [child] = await Promise.allSettled([
            auth.apiKeys.create({ user: 'alice', name: `child-${round}`, scopes: ['jobs:read'], expiresAt }, actor),
            elsewhere.apiKeys.revoke(parent.record.id, CLI),
          ]);
          const live = (await auth.apiKeys.list({ user: 'alice' }, CLI)).filter((key) => key.revokedAt === null).map((key) => key.name);
          assert.deepEqual(live, [], `round ${round}: ${child.status === 'fulfilled' ? 'the child was revoked with its parent' : 'the child was refused'}`);
        }
      } finally {
        await other.close();
      }
    });
  });

  it("never lets a key see or revoke a key with rights it lacks, its owner's full-rights key included", async () => {
    await withAuth(async ({ auth, clock }) => {
      await auth.users.add({ name: 'admin', role: 'admin', password: ADMIN_PASSWORD }, CLI);
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      const full = await auth.apiKeys.create({ user: 'alice', name: 'full' }, CLI);
      const writer = await auth.apiKeys.create({ user: 'alice', name: 'writer', scopes: ['jobs:read', 'jobs:write'] }, CLI);
      const reader = await auth.apiKeys.create(
        { user: 'alice', name: 'reader', scopes: ['jobs:read', 'keys:manage'], expiresAt: new Date(clock.now().getTime() + DAY) },
        CLI,
      );
      const narrow = await auth.apiKeys.create({ user: 'alice', name: 'narrow', scopes: ['jobs:read'] }, CLI);
      const actor = await keyActor(auth, { apiKeyHeader: reader.key });

      assert.deepEqual((await auth.apiKeys.list({ user: 'alice' }, actor)).map((key) => key.name).sort(), ['narrow', 'reader']);
      for (const stronger of [full, writer]) {
        await assert.rejects(auth.apiKeys.revoke(stronger.record.id, actor), {
          code: 'key_exceeds_rights',
          message: `API key ${stronger.record.id} holds rights this credential lacks`,
        });
        assert.ok(await auth.authenticateRequest({ apiKeyHeader: stronger.key }), 'still works');
      }
      assert.equal((await auth.apiKeys.revoke(narrow.record.id, actor)).record.revokedAt, clock.now().toISOString());

      // An admin's key with users:admin sees other users' keys only as far as its own rights reach.
      const adminKey = await auth.apiKeys.create({ user: 'admin', name: 'ops', scopes: ['jobs:read', 'jobs:write', 'keys:manage', 'users:admin'] }, CLI);
      const adminActor = await keyActor(auth, { apiKeyHeader: adminKey.key });
      assert.deepEqual((await auth.apiKeys.list({ user: 'alice' }, adminActor)).map((key) => key.name).sort(), ['narrow', 'reader', 'writer']);
      await assert.rejects(auth.apiKeys.revoke(full.record.id, adminActor), { code: 'key_exceeds_rights' });
      const session = requestActor((await auth.login('admin', ADMIN_PASSWORD, CLIENT)).principal, CLIENT);
      assert.equal((await auth.apiKeys.list({}, session)).length, 5, 'a signed-in admin sees every key');
    });
  });
});

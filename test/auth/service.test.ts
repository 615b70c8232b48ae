import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLI, CLIENT, USER_PASSWORD, withAuth } from './support.js';

describe('authenticateRequest', () => {
  it('takes the API key before the bearer token before the cookie, and never falls back from a bad credential', async () => {
    await withAuth(async ({ auth }) => {
      await auth.users.add({ name: 'alice', role: 'operator', password: USER_PASSWORD }, CLI);
      await auth.users.add({ name: 'bob', role: 'viewer', password: USER_PASSWORD }, CLI);
      const cookie = (await auth.login('alice', USER_PASSWORD, CLIENT)).session.id;
      const bearer = (await auth.tokens.issueForPassword('bob', USER_PASSWORD, CLIENT)).token;
      const { key: apiKeyHeader } = await auth.apiKeys.create({ user: 'bob', name: 'k', scopes: ['jobs:read'] }, CLI);

      const via = async (credentials: Parameters<typeof auth.authenticateRequest>[0]) => {
        const principal = await auth.authenticateRequest(credentials);
        return principal === null ? null : `${principal.name}/${principal.via}`;
      };
      assert.equal(await via({}), null);
      assert.equal(await via({ cookie }), 'alice/session');
      assert.equal(await via({ bearer }), 'bob/jwt');
      assert.equal(await via({ apiKeyHeader }), 'bob/api_key');
      assert.equal(await via({ cookie, bearer }), 'bob/jwt');
      assert.equal(await via({ cookie, bearer, apiKeyHeader }), 'bob/api_key');
      assert.equal(await via({ cookie, apiKeyHeader: 'd2i_wrong' }), null);
      assert.equal(await via({ cookie, bearer: 'wrong' }), null);
      assert.equal(await via({ cookie: 'wrong', bearer }), 'bob/jwt');
    });
  });
});

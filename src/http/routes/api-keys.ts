import Type from 'typebox';
import { API_KEY_MAX_EXPIRY_DAYS, expiryAfterDays } from '../../auth/api-keys.js';
import type { AuthService } from '../../auth/service.js';
import { apiKeyView } from '../../auth/views.js';
import { ValidationError } from '../../errors.js';
import type { App } from '../app.js';
import { actorOf } from '../guard.js';
import { PERMISSIONS } from '../permissions.js';
import { Nullable, Timestamp, errors } from '../schemas.js';

const ApiKey = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    user: Type.String({ description: 'The owner' }),
    prefix: Type.String({ description: 'The first characters of the key, to recognise it' }),
    scopes: Nullable(Type.Array(Type.Enum([...PERMISSIONS]), { description: "null: all of the owner's rights" })),
    status: Type.Enum(['active', 'expired', 'revoked']),
    created_at: Timestamp,
    created_by: Type.String(),
    expires_at: Nullable(Timestamp),
    revoked_at: Nullable(Timestamp),
    last_used_at: Nullable(Timestamp),
    parent_id: Nullable(
      Type.String({ description: 'The key whose request created this one; revoking it revoked this one too. null: made by a signed-in user or the CLI' }),
    ),
  },
  { additionalProperties: false },
);

const Revoked = Type.Object(
  {
    ...ApiKey.properties,
    also_revoked: Type.Array(Type.String(), { description: 'The keys created with this one (or with those), revoked along with it' }),
  },
  { additionalProperties: false },
);

const KeyId = Type.String({ pattern: '^key_[a-z0-9]{1,64}$' });
const UserName = Type.String({ pattern: '^[a-z][a-z0-9._-]{2,31}$' });

const ListQuery = Type.Object(
  {
    user: Type.Optional(UserName),
    all: Type.Optional(Type.Boolean({ description: "Every user's keys (users:admin)" })),
  },
  { additionalProperties: false, description: 'Default: your own keys. A key or bearer token sees only keys whose rights lie within its own.' },
);

const CreateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'What the key is for' }),
    user: Type.Optional(UserName),
    scopes: Type.Optional(Nullable(Type.Array(Type.Enum([...PERMISSIONS]), { minItems: 1, uniqueItems: true }))),
    expires_at: Type.Optional(Timestamp),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: API_KEY_MAX_EXPIRY_DAYS })),
  },
  { additionalProperties: false },
);

export function apiKeyRoutes(auth: AuthService) {
  const { apiKeys } = auth;
  return (app: App): void => {
    app.get(
      '/api/v1/api-keys',
      {
        config: { permission: 'keys:manage' },
        schema: {
          tags: ['users'],
          summary: 'List API keys',
          description:
            "Your own keys by default; another user's (`user=`) or everyone's (`all=true`) need users:admin. Through a key or a bearer token, only the keys whose rights lie within its own are listed. Never shows the secrets.",
          querystring: ListQuery,
          response: { 200: Type.Object({ api_keys: Type.Array(ApiKey) }, { additionalProperties: false }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const { user, all = false } = request.query;
        const keys = await apiKeys.list(all ? {} : { user: user ?? actor.principal.name }, actor);
        const now = new Date();
        return { api_keys: keys.map((key) => apiKeyView(key, now)) };
      },
    );

    app.post(
      '/api/v1/api-keys',
      {
        config: { permission: 'keys:manage' },
        schema: {
          tags: ['users'],
          summary: 'Create an API key',
          description:
            "For yourself, or (users:admin, signed in) for `user`. Scopes cannot exceed the owner's rights; without scopes the key carries all of them. " +
            'A request carrying a key or a bearer token creates keys only for its own user, only with explicit scopes it holds itself (`scope_exceeds_rights`), ' +
            'and, when it expires, only keys that expire no later (`expiry_exceeds_credential`); a key made with a key is revoked with it. The key is in this answer only: store it now.',
          body: CreateBody,
          response: { 201: Type.Object({ key: Type.String(), api_key: ApiKey }, { additionalProperties: false }), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const actor = actorOf(request);
        const { name, user, scopes, expires_at: expiresAt, expires_in_days: expiresInDays } = request.body;
        if (expiresAt !== undefined && expiresInDays !== undefined) {
          throw new ValidationError('invalid_expiry', 'Give expires_at or expires_in_days, not both');
        }
        const expiry = expiresAt !== undefined ? new Date(expiresAt) : expiresInDays !== undefined ? expiryAfterDays(expiresInDays) : null;
        const created = await apiKeys.create({ user: user ?? actor.principal.name, name, scopes: scopes ?? null, expiresAt: expiry }, actor);
        return reply.status(201).send({ key: created.key, api_key: apiKeyView(created.record, new Date()) });
      },
    );

    app.delete(
      '/api/v1/api-keys/:id',
      {
        config: { permission: 'keys:manage' },
        schema: {
          tags: ['users'],
          summary: 'Revoke an API key',
          description:
            "Your own, or anyone's with users:admin; through a key or a bearer token only a key whose rights lie within its own (`key_exceeds_rights`). " +
            'The key, the keys created with it and the tokens issued for any of them stop working from the next request on.',
          params: Type.Object({ id: KeyId }, { additionalProperties: false }),
          response: { 200: Revoked, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const { record, alsoRevoked } = await apiKeys.revoke(request.params.id, actorOf(request));
        return { ...apiKeyView(record, new Date()), also_revoked: alsoRevoked };
      },
    );
  };
}

import Type from 'typebox';
import type { Principal } from '../../auth/principal.js';
import type { AuthService } from '../../auth/service.js';
import { userView } from '../../auth/views.js';
import type { App } from '../app.js';
import { clientOf, principalOf } from '../guard.js';
import { PERMISSIONS, type Permission } from '../permissions.js';
import { Timestamp, errors } from '../schemas.js';
import { changeOwnPassword, clearSessionCookie, signIn } from '../session-cookie.js';
import { User } from './users.js';

const UserName = Type.String({ minLength: 1, maxLength: 64, description: 'User name' });
/** Long enough for any passphrase, short enough that bcrypt (which reads 72 bytes) is never fed megabytes. */
const Password = Type.String({ minLength: 1, maxLength: 1024 });
const NewPassword = Type.String({ minLength: 1, maxLength: 1024, description: 'At least 12 characters with upper case, lower case and a digit' });

const LoginBody = Type.Object({ username: UserName, password: Password }, { additionalProperties: false });

const Session = Type.Object(
  {
    user: User,
    permissions: Type.Array(Type.Enum([...PERMISSIONS])),
    must_change_password: Type.Boolean({ description: 'True: nothing but changing the password is allowed until it is changed' }),
    csrf_token: Type.String({ description: 'Send as X-CSRF-Token (or the _csrf form field) with every state-changing request signed in by this cookie' }),
    expires_at: Timestamp,
  },
  { additionalProperties: false },
);

const Me = Type.Object(
  {
    name: Type.String(),
    role: Type.String(),
    via: Type.Enum(['session', 'api_key', 'jwt']),
    permissions: Type.Array(Type.Enum([...PERMISSIONS])),
    must_change_password: Type.Boolean(),
    csrf_token: Type.Optional(Type.String()),
    api_key_id: Type.Optional(Type.String()),
    expires_at: Type.Optional(
      Type.String({
        format: 'date-time',
        description: 'When the key or bearer token of this request expires (ISO 8601 UTC); keys it creates must expire no later',
      }),
    ),
  },
  { additionalProperties: false },
);

const PasswordBody = Type.Object({ current_password: Password, new_password: NewPassword }, { additionalProperties: false });

const TokenBody = Type.Union(
  [
    Type.Object({ username: UserName, password: Password }, { additionalProperties: false }),
    Type.Object({ api_key: Type.String({ minLength: 1, maxLength: 256 }) }, { additionalProperties: false }),
  ],
  { description: 'A user name and password, or an API key' },
);

const Token = Type.Object(
  {
    access_token: Type.String(),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer({ description: 'Seconds' }),
    expires_at: Timestamp,
  },
  { additionalProperties: false },
);

const SetupToken = Type.String({ pattern: '^[A-Za-z0-9_-]{16,128}$', description: 'The token of the setup link the service printed' });
const SetupQuery = Type.Object({ token: Type.Optional(SetupToken) }, { additionalProperties: false });
const SetupState = Type.Object(
  { needed: Type.Boolean({ description: 'True while no enabled admin exists' }), token_valid: Type.Boolean() },
  { additionalProperties: false },
);
const SetupBody = Type.Object({ token: SetupToken, username: UserName, password: NewPassword }, { additionalProperties: false });

function permissionList(principal: Principal): Permission[] {
  return PERMISSIONS.filter((permission) => principal.permissions.has(permission));
}

export function authRoutes(auth: AuthService) {
  return (app: App): void => {
    app.post(
      '/api/v1/auth/login',
      {
        config: { permission: 'public', rateLimit: 'login' },
        schema: {
          tags: ['auth'],
          summary: 'Sign in with a password (web session)',
          description:
            'Starts a session and sets the HttpOnly session cookie (a new id every time). The same 401 answers an unknown user, a wrong password and a disabled account; repeated failures lock the account and the address for a while (429 with Retry-After).',
          body: LoginBody,
          response: { 200: Session, ...errors(400, 401, 403, 429) },
        },
      },
      async (request, reply) => {
        const { username, password } = request.body;
        const { session, principal, user } = await signIn(auth.login, request, reply, username, password);
        return {
          user: userView(user),
          permissions: permissionList(principal),
          must_change_password: principal.mustChangePassword,
          csrf_token: session.csrfToken,
          expires_at: session.expiresAt,
        };
      },
    );

    app.post(
      '/api/v1/auth/logout',
      {
        config: { permission: 'authenticated' },
        schema: { tags: ['auth'], summary: 'End this session', response: { 204: Type.Null(), ...errors(401, 403) } },
      },
      async (request, reply) => {
        await auth.logout(principalOf(request), clientOf(request));
        clearSessionCookie(request, reply);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/api/v1/auth/me',
      {
        config: { permission: 'authenticated' },
        schema: { tags: ['auth'], summary: 'Who this request acts for, and what it may do', response: { 200: Me, ...errors(401) } },
      },
      async (request) => {
        const principal = principalOf(request);
        return {
          name: principal.name,
          role: principal.role,
          via: principal.via,
          permissions: permissionList(principal),
          must_change_password: principal.mustChangePassword,
          ...(principal.csrfToken === undefined ? {} : { csrf_token: principal.csrfToken }),
          ...(principal.apiKeyId === undefined ? {} : { api_key_id: principal.apiKeyId }),
          ...(principal.expiresAt === undefined ? {} : { expires_at: principal.expiresAt }),
        };
      },
    );

    app.put(
      '/api/v1/auth/password',
      {
        config: { permission: 'authenticated', rateLimit: 'login' },
        schema: {
          tags: ['auth'],
          summary: 'Change your own password',
          description: 'Needs the current password. Ends every session and token of the user; a browser that asked gets a new session cookie in the answer.',
          body: PasswordBody,
          response: { 200: Session, 204: Type.Null(), ...errors(400, 401, 403, 429) },
        },
      },
      async (request, reply) => {
        const { current_password: current, new_password: next } = request.body;
        const { user, renewed } = await changeOwnPassword(auth, request, reply, current, next);
        if (renewed === null) return reply.status(204).send(null);
        return {
          user: userView(user),
          permissions: permissionList(renewed.principal),
          must_change_password: renewed.principal.mustChangePassword,
          csrf_token: renewed.session.csrfToken,
          expires_at: renewed.session.expiresAt,
        };
      },
    );

    app.post(
      '/api/v1/auth/token',
      {
        config: { permission: 'public', rateLimit: 'login' },
        schema: {
          tags: ['auth'],
          summary: 'Get a short-lived bearer token',
          description:
            "For a user name and password or an API key: a key's token carries the key's current rights and no more, and expires no later than the key. " +
            'Send it as `Authorization: Bearer <token>`. It stops working when it expires, when the password or role changes, the user is disabled, or its key is revoked. ' +
            'A user whose password must be changed (expired, or reset by an admin) gets no token but 403 `password_change_required`: sign in with `POST /api/v1/auth/login` and change it with `PUT /api/v1/auth/password` first.',
          body: TokenBody,
          response: { 200: Token, ...errors(400, 401, 403, 429) },
        },
      },
      async (request) => {
        const client = clientOf(request);
        const body = request.body;
        const issued =
          'api_key' in body ? await auth.tokens.issueForApiKey(body.api_key, client) : await auth.tokens.issueForPassword(body.username, body.password, client);
        return { access_token: issued.token, token_type: issued.tokenType, expires_in: issued.expiresIn, expires_at: issued.expiresAt };
      },
    );

    app.get(
      '/api/v1/auth/setup',
      {
        config: { permission: 'public' },
        schema: {
          tags: ['auth'],
          summary: 'Whether the first admin still has to be created, and whether a setup token is valid',
          querystring: SetupQuery,
          response: { 200: SetupState, ...errors(400) },
        },
      },
      async (request) => {
        const needed = await auth.setup.needed();
        const token = request.query.token;
        return { needed, token_valid: needed && token !== undefined && (await auth.setup.isValid(token)) };
      },
    );

    app.post(
      '/api/v1/auth/setup',
      {
        config: { permission: 'public', rateLimit: 'login' },
        schema: {
          tags: ['auth'],
          summary: 'Create the first admin with the one-time setup token',
          description: 'Works once, while no enabled admin exists, with the token of the link the service printed at start.',
          body: SetupBody,
          response: { 201: User, ...errors(400, 401, 409, 429) },
        },
      },
      async (request, reply) => {
        const { token, username, password } = request.body;
        const user = await auth.setup.complete(token, username, password, clientOf(request));
        return reply.status(201).send(userView(user));
      },
    );
  };
}

import Type from 'typebox';
import { USER_ROLES } from '../../auth/roles.js';
import type { AuthService } from '../../auth/service.js';
import { userView } from '../../auth/views.js';
import type { App } from '../app.js';
import { actorOf } from '../guard.js';
import { Nullable, Timestamp, errors } from '../schemas.js';

export const User = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    role: Type.Enum([...USER_ROLES]),
    disabled: Type.Boolean(),
    password_changed_at: Timestamp,
    password_reset_required: Type.Boolean({ description: 'True: the user must choose a new password at the next login' }),
    created_at: Timestamp,
    updated_at: Timestamp,
    last_login_at: Nullable(Timestamp),
  },
  { additionalProperties: false },
);

const UserName = Type.String({
  pattern: '^[a-z][a-z0-9._-]{2,31}$',
  description: '3 to 32 characters: lower-case letters, digits, . _ -, starting with a letter',
});
const Role = Type.Enum([...USER_ROLES]);
const Password = Type.String({ minLength: 1, maxLength: 1024, description: 'At least 12 characters with upper case, lower case and a digit' });
const UserParams = Type.Object({ name: UserName }, { additionalProperties: false });

const CreateBody = Type.Object(
  {
    name: UserName,
    role: Role,
    password: Password,
    require_change: Type.Optional(
      Type.Boolean({ default: true, description: 'The user must choose a new password at the first login (default true: an admin handed this one out)' }),
    ),
  },
  { additionalProperties: false },
);

const UpdateBody = Type.Object(
  { role: Type.Optional(Role), disabled: Type.Optional(Type.Boolean({ description: 'True disables the user and ends its sessions and tokens' })) },
  { additionalProperties: false, minProperties: 1 },
);

const ResetBody = Type.Object(
  {
    password: Password,
    require_change: Type.Optional(Type.Boolean({ default: true, description: 'The user must choose a new password at the next login' })),
  },
  { additionalProperties: false },
);

export function userRoutes(auth: AuthService) {
  const { users } = auth;
  return (app: App): void => {
    app.get(
      '/api/v1/users',
      {
        config: { permission: 'users:admin' },
        schema: {
          tags: ['users'],
          summary: 'List users',
          response: { 200: Type.Object({ users: Type.Array(User) }, { additionalProperties: false }), ...errors(401, 403) },
        },
      },
      async (request) => ({ users: (await users.list(actorOf(request))).map(userView) }),
    );

    app.post(
      '/api/v1/users',
      {
        config: { permission: 'users:admin' },
        schema: { tags: ['users'], summary: 'Add a user', body: CreateBody, response: { 201: User, ...errors(400, 401, 403, 409) } },
      },
      async (request, reply) => {
        const { name, role, password, require_change: requireChange = true } = request.body;
        const user = await users.add({ name, role, password, requireChange }, actorOf(request));
        return reply.status(201).send(userView(user));
      },
    );

    app.get(
      '/api/v1/users/:name',
      {
        config: { permission: 'users:admin' },
        schema: { tags: ['users'], summary: 'One user', params: UserParams, response: { 200: User, ...errors(400, 401, 403, 404) } },
      },
      async (request) => userView(await users.get(request.params.name, actorOf(request))),
    );

    app.patch(
      '/api/v1/users/:name',
      {
        config: { permission: 'users:admin' },
        schema: {
          tags: ['users'],
          summary: 'Change a role, disable or enable a user',
          description: "The last enabled admin cannot be demoted or disabled. A role change or disable ends the user's sessions and tokens.",
          params: UserParams,
          body: UpdateBody,
          response: { 200: User, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const actor = actorOf(request);
        const { name } = request.params;
        const { role, disabled } = request.body;
        let user = await users.get(name, actor);
        if (role !== undefined && role !== user.role) user = await users.setRole(name, role, actor);
        if (disabled === true && !user.disabled) user = await users.disable(name, actor);
        if (disabled === false && user.disabled) user = await users.enable(name, actor);
        return userView(user);
      },
    );

    app.post(
      '/api/v1/users/:name/password',
      {
        config: { permission: 'users:admin' },
        schema: {
          tags: ['users'],
          summary: "Reset a user's password",
          description: "Ends the user's sessions and tokens; by default the user must choose a new password at the next login.",
          params: UserParams,
          body: ResetBody,
          response: { 200: User, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => {
        const { password, require_change: requireChange = true } = request.body;
        return userView(await users.resetPassword(request.params.name, password, actorOf(request), { requireChange }));
      },
    );

    app.delete(
      '/api/v1/users/:name',
      {
        config: { permission: 'users:admin' },
        schema: {
          tags: ['users'],
          summary: 'Delete a user (and its keys and sessions)',
          params: UserParams,
          response: { 204: Type.Null(), ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        await users.delete(request.params.name, actorOf(request));
        return reply.status(204).send(null);
      },
    );
  };
}

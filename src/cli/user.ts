import type { Command } from 'commander';
import type { UserRecord } from '../auth/model.js';
import { assertRole, assertUserName } from '../auth/users.js';
import { userView } from '../auth/views.js';
import { ValidationError } from '../errors.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { printTable } from './format.js';
import { withLocalAuth } from './local-auth.js';

interface PasswordOptions {
  passwordStdin?: boolean;
}

/** All of stdin, without the one line break `echo` or a here-string adds. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/** Reads one line from the terminal without echoing it. */
function readHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error): void => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
      if (error === undefined) resolve(value);
      else reject(error);
    };
    const onData = (chunk: string): void => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return finish();
        // Ctrl-C, or Ctrl-D on an empty line: the person gave up.
        if (char === '\u0003' || (char === '\u0004' && value === '')) return finish(new ValidationError('cancelled', 'Cancelled; no password given'));
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('');
        else if (char >= ' ') value += char;
      }
    };
    // Echo goes off before the prompt appears, so nothing typed as soon as it shows can be echoed.
    input.setEncoding('utf8');
    input.setRawMode(true);
    process.stderr.write(prompt);
    input.resume();
    input.on('data', onData);
  });
}

/** The new password: from stdin when asked, else typed twice at a terminal. Never from an argument, which `ps` would show. */
async function newPassword(name: string, options: PasswordOptions): Promise<string> {
  if (options.passwordStdin) return readStdin();
  if (!process.stdin.isTTY) {
    throw new ValidationError('password_required', 'No terminal to ask for the password on; pipe it in with --password-stdin');
  }
  const first = await readHidden(`New password for ${name}: `);
  const second = await readHidden('Repeat it: ');
  if (first !== second) throw new ValidationError('password_mismatch', 'The two passwords differ; nothing was changed');
  return first;
}

function printUsers(users: UserRecord[]): void {
  if (users.length === 0) {
    process.stdout.write('No users yet. Add the first admin with: disk2iso user add NAME --role admin\n');
    return;
  }
  const header = ['NAME', 'ROLE', 'STATUS', 'PASSWORD CHANGED', 'LAST LOGIN'];
  const rows = users.map((user) => [
    user.name,
    user.role,
    user.disabled ? 'disabled' : user.passwordResetRequired ? 'must change password' : 'enabled',
    user.passwordChangedAt,
    user.lastLoginAt ?? 'never',
  ]);
  printTable(header, rows);
}

export function registerUserCommand(program: Command): void {
  const user = program.command('user').description('manage the users of the web UI and the API (works whether or not the service runs)');
  const config = (command: Command) => createCliContext(command.optsWithGlobals<GlobalOptions>()).config;

  user
    .command('add')
    .argument('<name>', 'user name: 3-32 of a-z 0-9 . _ -, starting with a letter')
    .requiredOption('--role <role>', 'admin, operator or viewer')
    .option('--password-stdin', 'read the password from stdin instead of prompting')
    .option('--require-change', 'make the user choose a new password at the first login')
    .description('add a user; the password is prompted for (twice, not echoed) or read from stdin')
    .action(async (name: string, options: PasswordOptions & { role: string; requireChange?: boolean }, command: Command) => {
      // A typo in the name or role should not cost typing the password twice.
      assertUserName(name);
      assertRole(options.role);
      const password = await newPassword(name, options);
      await withLocalAuth(config(command), async (auth, actor) => {
        const added = await auth.users.add({ name, role: options.role, password, requireChange: options.requireChange ?? false }, actor);
        process.stdout.write(`Added ${added.role} ${added.name}.\n`);
      });
    });

  user
    .command('list')
    .option('--json', 'print JSON instead of a table')
    .description('list users with role and status')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        const users = await auth.users.list(actor);
        if (options.json) process.stdout.write(`${JSON.stringify({ users: users.map(userView) }, null, 2)}\n`);
        else printUsers(users);
      });
    });

  user
    .command('reset-password')
    .argument('<name>', 'user name')
    .option('--password-stdin', 'read the password from stdin instead of prompting')
    .option('--require-change', 'make the user choose a new password at the next login')
    .description("set a user's password; ends the user's sessions and lifts a login lockout")
    .action(async (name: string, options: PasswordOptions & { requireChange?: boolean }, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        await auth.users.get(name, actor);
        const password = await newPassword(name, options);
        await auth.users.resetPassword(name, password, actor, { requireChange: options.requireChange ?? false });
        process.stdout.write(`Password of ${name} reset; the user's sessions have ended.\n`);
      });
    });

  user
    .command('set-role')
    .argument('<name>', 'user name')
    .argument('<role>', 'admin, operator or viewer')
    .description("change a user's role (the last enabled admin cannot be demoted)")
    .action(async (name: string, role: string, _options: unknown, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        const changed = await auth.users.setRole(name, role, actor);
        process.stdout.write(`${changed.name} is ${changed.role}.\n`);
      });
    });

  user
    .command('disable')
    .argument('<name>', 'user name')
    .description('stop a user from signing in; ends the sessions, API keys stop working')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        await auth.users.disable(name, actor);
        process.stdout.write(`Disabled ${name}.\n`);
      });
    });

  user
    .command('enable')
    .argument('<name>', 'user name')
    .description('let a disabled user sign in again')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        await auth.users.enable(name, actor);
        process.stdout.write(`Enabled ${name}.\n`);
      });
    });

  user
    .command('delete')
    .argument('<name>', 'user name')
    .description('delete a user with their sessions and API keys (the audit trail keeps their name)')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        await auth.users.delete(name, actor);
        process.stdout.write(`Deleted ${name}.\n`);
      });
    });
}

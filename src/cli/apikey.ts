import type { Command } from 'commander';
import { apiKeyStatus, apiKeyView } from '../auth/views.js';
import { ValidationError } from '../errors.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { printTable } from './format.js';
import { withLocalAuth } from './local-auth.js';

const UNIT_MS = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/**
 * `30d`, `12h`, `2w`, or an ISO 8601 date or time.
 * @internal exported for its tests
 */
export function parseExpiry(text: string, now: Date): Date {
  const relative = /^(\d{1,5})([hdw])$/.exec(text);
  if (relative?.[1] !== undefined && relative[2] !== undefined) {
    return new Date(now.getTime() + Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS]);
  }
  const absolute = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(absolute)) {
    throw new ValidationError('invalid_expiry', `--expires takes a duration like 30d, 12h or 2w, or an ISO 8601 date; got ${text}`, { expires: text });
  }
  return new Date(absolute);
}

function parseScopes(text: string): string[] {
  return text
    .split(',')
    .map((scope) => scope.trim())
    .filter((scope) => scope !== '');
}

export function registerApiKeyCommand(program: Command): void {
  const apikey = program.command('apikey').description('manage API keys (works whether or not the service runs)');
  const config = (command: Command) => createCliContext(command.optsWithGlobals<GlobalOptions>()).config;

  apikey
    .command('create')
    .requiredOption('--user <name>', 'the owner; the key never has more rights than the owner')
    .requiredOption('--name <label>', 'what the key is for')
    .option(
      '--scopes <list>',
      "comma-separated permissions, e.g. jobs:read,jobs:write; keys:manage lets the key create and revoke keys (default: all of the owner's rights)",
    )
    .option('--expires <when>', 'expiry: 30d, 12h, 2w or an ISO 8601 date (default: never)')
    .option('--json', 'print JSON')
    .description('create an API key and print it once; only its hash is stored')
    .action(async (options: { user: string; name: string; scopes?: string; expires?: string; json?: boolean }, command: Command) => {
      const expiresAt = options.expires === undefined ? null : parseExpiry(options.expires, new Date());
      await withLocalAuth(config(command), async (auth, actor) => {
        const scopes = options.scopes === undefined ? null : parseScopes(options.scopes);
        const { key, record } = await auth.apiKeys.create({ user: options.user, name: options.name, scopes, expiresAt }, actor);
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ key, api_key: apiKeyView(record, new Date()) }, null, 2)}\n`);
          return;
        }
        // The key alone on stdout, so `KEY=$(disk2iso apikey create …)` captures exactly it.
        process.stderr.write(
          `Created API key ${record.id} "${record.name}" for ${record.userName}; scopes: ${record.scopes?.join(', ') ?? "all of the owner's rights"}; ` +
            `expires: ${record.expiresAt ?? 'never'}.\nStore the key now: it is not shown again.\n`,
        );
        process.stdout.write(`${key}\n`);
      });
    });

  apikey
    .command('list')
    .option('--user <name>', 'only the keys of this user')
    .option('--json', 'print JSON instead of a table')
    .description('list API keys (never the keys themselves, only their first characters)')
    .action(async (options: { user?: string; json?: boolean }, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        const keys = await auth.apiKeys.list(options.user === undefined ? {} : { user: options.user }, actor);
        const now = new Date();
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ api_keys: keys.map((key) => apiKeyView(key, now)) }, null, 2)}\n`);
          return;
        }
        if (keys.length === 0) {
          process.stdout.write('No API keys.\n');
          return;
        }
        const header = ['ID', 'USER', 'NAME', 'PREFIX', 'STATUS', 'SCOPES', 'EXPIRES', 'LAST USED'];
        const rows = keys.map((key) => [
          key.id,
          key.userName,
          key.name,
          `${key.prefix}…`,
          apiKeyStatus(key, now),
          key.scopes?.join(',') ?? 'all',
          key.expiresAt ?? 'never',
          key.lastUsedAt ?? 'never',
        ]);
        printTable(header, rows);
      });
    });

  apikey
    .command('revoke')
    .argument('<id>', 'key id (see `disk2iso apikey list`)')
    .description('revoke an API key and the keys created with it; they stop working at once')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withLocalAuth(config(command), async (auth, actor) => {
        const { record, alsoRevoked } = await auth.apiKeys.revoke(id, actor);
        const along = alsoRevoked.length === 0 ? '' : `, and ${alsoRevoked.length} key(s) created with it: ${alsoRevoked.join(', ')}`;
        process.stdout.write(`Revoked ${record.id} "${record.name}" of ${record.userName}${along}.\n`);
      });
    });
}

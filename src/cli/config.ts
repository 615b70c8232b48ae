import type { Command } from 'commander';
import { type SettingLeaf, coerce, getPath, setPath, settingLeaves } from '../config/load.js';
import { ValidationError } from '../errors.js';
import type { JsonObject } from '../json.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { unixUser } from './local-auth.js';
import { withLocalService } from './local-service.js';

function leafOf(key: string): SettingLeaf {
  const leaf = settingLeaves().find((candidate) => candidate.path === key);
  if (!leaf) throw new ValidationError('invalid_setting', `unknown setting ${key} (see \`disk2iso config get\`)`, [{ key }]);
  return leaf;
}

/** Strings as they are (for scripts: `$(disk2iso config get storage.output_dir)`), everything else as JSON. */
function printable(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export function registerConfigCommand(program: Command): void {
  const config = program.command('config').description('read and change settings, as the web interface does');

  config
    .command('get')
    .argument('[key]', 'one setting, e.g. storage.output_dir')
    .description('the settings in effect (secrets masked), each with where it comes from; with KEY only its value')
    .option('--json', 'print JSON')
    .action(async (key: string | undefined, options: { json?: boolean }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      if (key !== undefined) leafOf(key);
      await withLocalService(ctx, async (local) => {
        const view = local.settings.view();
        const settings = view.settings as unknown as Record<string, unknown>;
        if (key !== undefined) {
          const value = getPath(settings, key);
          process.stdout.write(`${options.json ? JSON.stringify({ key, value, source: view.sources[key] }) : printable(value)}\n`);
          return;
        }
        if (options.json) {
          process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
          return;
        }
        const lines = settingLeaves().map((leaf) => `${leaf.path} = ${printable(getPath(settings, leaf.path))}  (${view.sources[leaf.path] ?? 'default'})`);
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  config
    .command('set')
    .argument('<key>', 'a setting, e.g. storage.output_dir')
    .argument('<value>', 'its new value (lists comma-separated)')
    .description('change a setting with the checks of the web interface; a running service takes it over within seconds')
    .action(async (key: string, raw: string, _options: unknown, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const value = coerce(raw, leafOf(key));
      const user = `cli:${unixUser()}`;
      await withLocalService(ctx, async (local) => {
        const before = getPath(local.settings.view().settings as unknown as Record<string, unknown>, key);
        const patch: JsonObject = {};
        setPath(patch, key, value);
        const view = await local.settings.update(patch, user);
        const after = getPath(view.settings as unknown as Record<string, unknown>, key);
        await local.audit.record({ event_type: 'config', action: 'change', user, ip_address: 'local', user_agent: null, details: { keys: [key] } });
        const service = await local.runningService();
        const effect = view.restart_required.includes(key)
          ? 'it takes effect when the service starts next'
          : service === null
            ? 'no service is running; it applies from its next start'
            : `the running service (pid ${service.holder.pid}) applies it within seconds`;
        process.stdout.write(`${key}: ${printable(before)} -> ${printable(after)}; ${effect}.\n`);
      });
    });
}

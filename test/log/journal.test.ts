import assert from 'node:assert/strict';
import { closeSync, openSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, createLogger } from '../../src/log.js';

/** Logs one line at every level pino has; at level debug, trace is left out. */
function logEveryLevel(log: Logger): void {
  log.trace('trace line');
  log.debug('debug line');
  log.info('info line');
  log.warn('warn line');
  log.error('error line');
  log.fatal('fatal line');
}

const LINES_LOGGED = 5;

describe('log lines for the journal', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'disk2iso-log-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function linesWritten(name: string, journalStream: (file: string) => string | undefined): Promise<string[]> {
    const file = join(dir, name);
    const fd = openSync(file, 'w');
    try {
      const stream = journalStream(file);
      logEveryLevel(createLogger({ level: 'debug', fd, env: stream === undefined ? {} : { JOURNAL_STREAM: stream } }));
      // The destination writes asynchronously, and pino's flush() does not wait for writes under way.
      while ((await readFile(file, 'utf8')).split('\n').length <= LINES_LOGGED) await sleep(10);
    } finally {
      closeSync(fd);
    }
    return (await readFile(file, 'utf8')).trimEnd().split('\n');
  }

  it('starts each line with its syslog priority when the descriptor is the stream JOURNAL_STREAM names', async () => {
    const lines = await linesWritten('journal', (file) => {
      const stat = statSync(file, { bigint: true });
      return `${stat.dev}:${stat.ino}`;
    });
    // journald takes `<N>` as PRIORITY; `journalctl -p err` shows 0 to 3: the error and the fatal line.
    assert.deepEqual(
      lines.map((line) => [/^<(\d)>\{/.exec(line)?.[1], JSON.parse(line.replace(/^<\d>/, '')).msg]),
      [
        ['7', 'debug line'],
        ['6', 'info line'],
        ['4', 'warn line'],
        ['3', 'error line'],
        ['2', 'fatal line'],
      ],
    );
  });

  it('writes plain JSON lines when stdout is not the journal, or JOURNAL_STREAM names another stream', async () => {
    for (const [name, stream] of [
      ['terminal', () => undefined],
      ['elsewhere', () => `${statSync(dir).dev}:${statSync(dir).ino}`],
    ] as const) {
      const lines = await linesWritten(name, stream);
      assert.equal(lines.length, LINES_LOGGED, name);
      for (const line of lines) assert.match(line, /^\{"level":\d+,/, `${name}: ${line}`);
    }
  });
});

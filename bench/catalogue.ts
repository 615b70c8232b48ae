import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { createArchiveRepository } from '../src/db/archive-repository.js';
import { openDatabase } from '../src/db/database.js';
import { machineDescription, markdownTable, percentile, writeSection } from './report.js';

const ARCHIVES = 2000;
const QUERIES = 400;
const PAGE = 50;
const VOCABULARY = 5000;
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'vo', 'zi', 'be', 'do', 'fu', 'gi', 'ho', 'ju'];
const WORDS = [
  'holiday',
  'wedding',
  'backup',
  'software',
  'photos',
  'music',
  'archive',
  'family',
  'travel',
  'school',
  'project',
  'invoice',
  'games',
  'drivers',
  'scans',
  'letters',
  'garden',
  'kitchen',
  'summer',
  'winter',
  'spring',
  'autumn',
  'birthday',
  'concert',
  'lecture',
  'taxes',
  'recipes',
  'video',
];

/** A repeatable pseudo-random sequence, so every run searches the same catalogue. */
function sequence(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/**
 * Disc search over 2,000 described images: the FTS5 index (bm25 ranking, what /api/v1/archives/search
 * and the archive page use) beside a plain LIKE over the same text, both returning a page of 50
 * and the total, as the page does.
 */
export async function benchCatalogue(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-bench-catalogue-'));
  const database = await openDatabase({ file: join(dir, 'bench.sqlite') });
  try {
    const archives = createArchiveRepository(database);
    const random = sequence(42);
    const word = () => WORDS[Math.floor(random() * WORDS.length)] ?? 'disc';
    // Notes draw from a large vocabulary (like real notes), labels and tags from a few common words.
    const syllable = () => SYLLABLES[Math.floor(random() * SYLLABLES.length)] ?? 'xa';
    const vocabulary = Array.from({ length: VOCABULARY }, () => `${syllable()}${syllable()}${syllable()}${syllable()}`);
    const rare = () => vocabulary[Math.floor(random() * vocabulary.length)] ?? 'kalomine';
    for (let index = 0; index < ARCHIVES; index++) {
      await archives.create({
        filename: `${word()}_${index}.iso`,
        path: `/bench/${index}.iso`,
        sizeBytes: 700_000_000,
        createdAt: new Date(Date.UTC(2020, 0, 1) + index * 3_600_000),
        checksums: {},
        metadata: {
          label: `${word()} ${word()} ${index}`,
          tags: [word(), word()],
          notes: Array.from({ length: 30 }, rare).join(' '),
          customFields: { shelf: `${word()} ${index % 40}` },
        },
        source: {
          deviceId: 'sr0',
          devicePath: '/dev/sr0',
          discKind: 'data',
          volumeLabel: `${word().toUpperCase()}_${index}`,
          volumeId: null,
          mediaType: 'dvd',
          fileSystems: ['iso9660'],
        },
      });
    }
    const timed = async (queries: string[], run: (query: string) => Promise<number>): Promise<{ times: number[]; hits: number }> => {
      const times: number[] = [];
      let hits = 0;
      for (const query of queries) {
        const started = performance.now();
        hits += await run(query);
        times.push(performance.now() - started);
      }
      return { times, hits };
    };
    const searchFts = async (query: string) => (await archives.list({ match: query, limit: PAGE })).total;
    const searchLike = async (query: string) => {
      const where = sql.join(
        query.split(' ').map((term) => sql`search_text like ${`%${term}%`}`),
        sql` and `,
      );
      await sql`select * from archives where ${where} order by created_at desc limit ${PAGE}`.execute(database.kysely);
      const counted = await sql<{ total: number }>`select count(*) as total from archives where ${where}`.execute(database.kysely);
      return counted.rows[0]?.total ?? 0;
    };
    const row = (name: string, result: { times: number[]; hits: number }) => [
      name,
      percentile(result.times, 0.5).toFixed(2),
      percentile(result.times, 0.99).toFixed(2),
      (result.hits / QUERIES).toFixed(0),
    ];
    // Warm both paths once, so neither pays for the first read of the file.
    await searchFts('warm');
    await searchLike('warm');
    const kinds: Record<string, () => string> = {
      'a rare word': rare,
      'a common word': word,
      'a common word and a 4-letter prefix': () => `${word()} ${rare().slice(0, 4)}`,
    };
    const rows: string[][] = [];
    for (const [kind, make] of Object.entries(kinds)) {
      const queries = Array.from({ length: QUERIES }, make);
      rows.push(row(`FTS5, ${kind}`, await timed(queries, searchFts)), row(`LIKE, ${kind}`, await timed(queries, searchLike)));
    }
    const table = markdownTable(['Search (page of 50 + total)', 'p50 ms', 'p99 ms', 'Matches per query (mean)'], rows);
    const body = `## Disc search (\`npm run bench:catalogue\`)\n\nMachine: ${machineDescription()}. ${ARCHIVES} archived images in a real SQLite file, each with a label, two tags, 30 words of notes, a custom field and a volume label; labels and tags drawn from ${WORDS.length} common words, notes from ${VOCABULARY} rarer ones. ${QUERIES} queries of each kind, one after another through the archive repository. FTS5 (what /api/v1/archives/search and the archive page use) matches words and prefixes and ranks by bm25; LIKE matches substrings and sorts by date, so the counts differ a little (a substring also matches inside words). The issue's bound: under 50 ms at p99.\n\n${table}\n`;
    console.log(body);
    await writeSection('catalogue', body);
  } finally {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  }
}

import { readFile } from 'node:fs/promises';
import Fastify from 'fastify';

/**
 * The reference for `npm run bench:api`: a bare Fastify app, run as its own process, with one route
 * that serializes the same page of jobs the real GET /api/v1/jobs?limit=50 returned. What the real
 * endpoint costs beyond this is its own work (validation, database query, views, hooks).
 */
const bodyFile = process.argv[2];
if (bodyFile === undefined) {
  console.error('usage: api-bare.js BODY_JSON_FILE');
  process.exit(2);
}
const body: unknown = JSON.parse(await readFile(bodyFile, 'utf8'));
const app = Fastify({ logger: false });
app.get('/jobs', async () => body);
const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`bare listening on ${address}\n`);
const stop = (): void => {
  void app.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

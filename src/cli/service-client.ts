import { type RequestOptions, request } from 'node:http';
import type { Config } from '../config/schema.js';
import { errnoCode, errorMessage } from '../errors.js';

/** What the running service answered. */
export interface ServiceAnswer {
  reached: true;
  status: number;
  contentType: string;
  body: string;
}

/** Why no answer came: `none` when nothing listens there (no service runs), `failed` for anything else. */
export interface NoAnswer {
  reached: false;
  why: 'none' | 'failed';
  reason: string;
}

/** The address the configured service listens on: its unix socket, or its host and port. */
export function serviceAddress(config: Config): { label: string; options: RequestOptions } | null {
  const { socket, host, port } = config.server;
  if (socket !== '') return { label: `unix:${socket}`, options: { socketPath: socket } };
  // Port 0 means any free port, chosen at start: nobody else can know it.
  if (port === 0) return null;
  // A service on every address answers on the loopback one.
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return { label: `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`, options: { host: reachable, port } };
}

/** Errors that mean nothing listens at the address: the service is not running. */
const NOBODY_LISTENS = new Set(['ECONNREFUSED', 'ENOENT']);

/** Long enough for a readiness check that waits on a slow output disk and a busy database (5 s each). */
const TIMEOUT_MS = 15_000;

/** One GET to the configured service; never throws for a service that is missing or does not answer. */
export function askService(config: Config, path: string, headers: Record<string, string> = {}): Promise<ServiceAnswer | NoAnswer> {
  const address = serviceAddress(config);
  if (address === null) {
    return Promise.resolve({ reached: false, why: 'failed', reason: 'server.port is 0 (a port chosen at start), so the service cannot be found' });
  }
  return new Promise((resolve) => {
    const sent = request({ ...address.options, method: 'GET', path, headers: { host: 'localhost', ...headers }, timeout: TIMEOUT_MS }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ reached: true, status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), body }));
      response.on('error', (error) => resolve({ reached: false, why: 'failed', reason: errorMessage(error) }));
    });
    sent.on('timeout', () => sent.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    sent.on('error', (error) => {
      const code = errnoCode(error);
      resolve({ reached: false, why: code !== undefined && NOBODY_LISTENS.has(code) ? 'none' : 'failed', reason: errorMessage(error) });
    });
    sent.end();
  });
}

import proxyAddr from '@fastify/proxy-addr';
import Type from 'typebox';
import type { App } from '../app.js';
import { errors } from '../schemas.js';

export interface MetricsEndpoint {
  readonly contentType: string;
  render(): Promise<string>;
  /** Client addresses that may scrape without credentials (metrics.allow_addresses). */
  allowAddress(address: string): boolean;
}

/** Whether an address lies in one of the listed addresses or CIDR ranges; an IPv4-mapped IPv6 address counts as its IPv4 address. */
export function addressFilter(list: readonly string[]): (address: string) => boolean {
  if (list.length === 0) return () => false;
  const listed = proxyAddr.compile([...list]);
  return (address) => listed(address, 0);
}

/** Prometheus scrapes here: the conventional path, beside the API rather than in it. */
export function metricsRoutes(metrics: MetricsEndpoint) {
  return (app: App): void => {
    app.get(
      '/metrics',
      {
        config: { permission: 'metrics:read', allowAddress: (address) => metrics.allowAddress(address) },
        schema: {
          tags: ['system'],
          summary: 'Prometheus metrics',
          description:
            'The Prometheus text format (version 0.0.4): jobs by status, queue length, bytes imaged, read rate, unreadable bytes and read errors per drive, verifications and their failures, drive and media state, output storage and its thresholds, HTTP requests by route and status with durations, process metrics. Needs `metrics:read` (an API key as `X-API-Key` or `Authorization: Bearer`), or no credentials from an address in `metrics.allow_addresses`. docs/operations.md lists every metric.',
          response: { 200: Type.String({ description: 'text/plain; version=0.0.4' }), ...errors(401, 403, 429, 503) },
        },
      },
      async (_request, reply) => {
        const text = await metrics.render();
        return reply.type(metrics.contentType).send(text);
      },
    );
  };
}

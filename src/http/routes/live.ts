import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { WebSocket } from 'ws';
import { ValidationError } from '../../errors.js';
import type { DomainEventType } from '../../notifications/model.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { LIVE_MESSAGE_TYPES, type LiveHub, type LiveMessage, type LiveSink } from '../live.js';
import type { Permission } from '../permissions.js';
import { errors } from '../schemas.js';

/** How long to wait for a pong before treating a WebSocket client as gone. */
const PONG_GRACE_HEARTBEATS = 2;

const MESSAGE_DESCRIPTION = `Messages are JSON: {"type": ${LIVE_MESSAGE_TYPES.map((type) => `"${type}"`).join(' | ')}, "job_id": "job_…", "data": {…}}.
job_update data: status, progress, speed_bps, eta_seconds, phase, bytes_done, size_bytes, bad_bytes, error_count, updated_at (when the job was in that state).
job_created and job_finished data: the full job (as GET /api/v1/jobs/{job_id}, without queue_position).
job_log data: level, message, at. job_removed data: {}.
archive_verification_update carries "task_id" and "archive_id" instead of "job_id", and as data the task (as GET /api/v1/archives/verification-tasks/{task_id}): when it is queued, as it progresses, when a cancel is asked for, and when it ends; only clients that may read archives (archives:read) get it.
domain_event carries "event_id" instead of "job_id", and as data each event of the durable stream once it is recorded: {id, type, at, payload}, the payload as webhooks get it (docs/api.md); never coalesced; only to clients that may read its subject (jobs:read for job.*, devices:read for disc.* and drive.*, archives:read for verification.*, system:read for storage.* and service.started).
Updates are coalesced per job and per task and sent to each client at most twenty times a second, each one's progress at most four times (an update after a quiet 50 ms goes out at once); a client that cannot keep up receives only the latest state of each.`;

/**
 * Who may see a domain event on the live stream: who may read what it is about (a job, a drive or
 * disc, an archive, the service). The test event goes only to its channel.
 */
export const DOMAIN_EVENT_PERMISSIONS: Record<DomainEventType, Permission | null> = {
  'job.queued': 'jobs:read',
  'job.started': 'jobs:read',
  'job.paused': 'jobs:read',
  'job.completed': 'jobs:read',
  'job.completed_with_errors': 'jobs:read',
  'job.failed': 'jobs:read',
  'job.cancelled': 'jobs:read',
  'service.started': 'system:read',
  'disc.inserted': 'devices:read',
  'disc.removed': 'devices:read',
  'disc.unimageable': 'devices:read',
  'disc.waiting': 'devices:read',
  'disc.duplicate_skipped': 'devices:read',
  'drive.appeared': 'devices:read',
  'drive.vanished': 'devices:read',
  'verification.passed': 'archives:read',
  'verification.failed': 'archives:read',
  'storage.warning_passed': 'system:read',
  'storage.warning_cleared': 'system:read',
  'storage.stop_passed': 'system:read',
  'storage.stop_cleared': 'system:read',
  'notification.test': null,
};

/** Verification messages name archives: only for clients that may read them; a domain event only for who may read its subject. */
function acceptsFor(request: FastifyRequest): (message: LiveMessage) => boolean {
  const principal = principalOf(request);
  const readsArchives = principal.can('archives:read');
  return (message) => {
    if (message.type === 'archive_verification_update') return readsArchives;
    if (message.type === 'domain_event') {
      const needed = DOMAIN_EVENT_PERMISSIONS[message.data.type];
      return needed !== null && principal.can(needed);
    }
    return true;
  };
}

function webSocketSink(socket: WebSocket): LiveSink {
  let missedPongs = 0;
  socket.on('pong', () => {
    missedPongs = 0;
  });
  return {
    send: (_message, json) => socket.send(json),
    bufferedBytes: () => socket.bufferedAmount,
    heartbeat: () => {
      missedPongs += 1;
      if (missedPongs > PONG_GRACE_HEARTBEATS) socket.terminate();
      else socket.ping();
    },
    close: () => socket.close(1001, 'server shutting down'),
  };
}

export function liveRoutes(hub: LiveHub) {
  return (app: App): void => {
    app.route({
      method: 'GET',
      url: '/api/v1/ws/jobs',
      // A stream has no headers worth asking for on their own.
      exposeHeadRoute: false,
      config: { permission: 'jobs:read' },
      schema: {
        tags: ['live'],
        summary: 'Live job updates (and verification progress) over WebSocket',
        description: `Upgrade to a WebSocket. ${MESSAGE_DESCRIPTION} Messages sent by the client are ignored.`,
        response: { 101: Type.Null({ description: 'Switching Protocols: the WebSocket is open' }), ...errors(400) },
      },
      // A plain GET gets the usual error shape instead of the websocket plugin's bare 404.
      handler: async () => {
        throw new ValidationError('websocket_upgrade_required', 'this endpoint speaks WebSocket: send an Upgrade request');
      },
      wsHandler: (socket, request) => {
        const disconnect = hub.connect(webSocketSink(socket), acceptsFor(request));
        socket.on('close', disconnect);
        socket.on('error', disconnect);
      },
    });

    app.get(
      '/api/v1/events',
      {
        // HEAD would open a stream whose headers are never flushed, since no body is ever written.
        exposeHeadRoute: false,
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['live'],
          summary: 'Live job updates (and verification progress) as Server-Sent Events',
          description: `text/event-stream; the event name is the message type and \`data:\` holds the same JSON as the WebSocket message. ${MESSAGE_DESCRIPTION} A comment line is sent every few seconds to keep proxies from closing the stream.`,
          response: { 200: Type.String({ description: 'text/event-stream' }) },
        },
      },
      (request, reply) => {
        reply.hijack();
        const raw = reply.raw;
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
          connection: 'keep-alive',
          'x-accel-buffering': 'no',
          'x-content-type-options': 'nosniff',
        });
        raw.write(': connected\nretry: 3000\n\n');
        const disconnect = hub.connect(
          {
            send: (message, json) => raw.write(`event: ${message.type}\ndata: ${json}\n\n`),
            bufferedBytes: () => raw.writableLength,
            heartbeat: () => raw.write(': keep-alive\n\n'),
            close: () => raw.end(),
          },
          acceptsFor(request),
        );
        request.raw.on('close', disconnect);
      },
    );
  };
}

import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { LiveMessageType } from '../../src/http/live.js';
import { adminKeys } from './client.js';

/** A live message as a client parses it: a job's (job_id) or a verification task's (task_id, archive_id). */
export interface ReceivedLiveMessage {
  type: LiveMessageType;
  job_id?: string;
  task_id?: string;
  archive_id?: string;
  event_id?: string;
  data: Record<string, unknown>;
}

export interface LiveClient {
  messages: ReceivedLiveMessage[];
  /** SSE comment lines (heartbeats) seen. */
  comments: string[];
  /** SSE event names, in order (they must equal the message types). */
  eventNames: string[];
  close(): void;
}

/**
 * Follows /api/v1/events as the test admin (or with `headers`), parsing the text/event-stream
 * framing by hand. Resolves once the stream is open.
 */
export function followEvents(url: string, headers: Record<string, string> = { 'x-api-key': adminKeys.get(url) ?? '' }): Promise<LiveClient> {
  return new Promise((resolve, reject) => {
    const client: LiveClient = { messages: [], comments: [], eventNames: [], close: () => undefined };
    let open = false;
    const request = get(`${url}/api/v1/events`, { headers }, (response) => {
      if (response.statusCode !== 200) {
        reject(new Error(`SSE answered ${response.statusCode}`));
        return;
      }
      assert.match(String(response.headers['content-type']), /^text\/event-stream/);
      response.setEncoding('utf8');
      let buffer = '';
      response.on('data', (chunk: string) => {
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event: string | null = null;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (event !== null) {
            client.eventNames.push(event);
            client.messages.push(JSON.parse(data.join('\n')) as ReceivedLiveMessage);
          }
        }
      });
      client.close = () => request.destroy();
      open = true;
      resolve(client);
    });
    request.on('error', (error) => {
      if (!open) reject(error);
    });
  });
}

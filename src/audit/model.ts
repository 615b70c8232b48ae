import type { JsonObject } from '../json.js';

/** One audit entry in the specification's JSON shape, plus its sequence number. */
export interface AuditEntry {
  id: number;
  timestamp: string;
  event_type: string;
  action: string;
  user: string | null;
  ip_address: string | null;
  user_agent: string | null;
  details: JsonObject;
}

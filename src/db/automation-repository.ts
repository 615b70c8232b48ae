import type { Selectable } from 'kysely';
import { type Clock, systemClock } from '../clock.js';
import type { HashAlgorithm } from '../config/schema.js';
import type { DiscNotice, DriveAutomation, DriveAutomationRecord, DuplicateMatch } from '../jobs/automation-model.js';
import type { Database } from './database.js';
import type { DiscNoticesTable, DriveAutomationTable } from './schema.js';
import { fromJson, timestamp, toJson } from './values.js';

export interface AutomationRepository {
  /** The stored settings of a drive, or null when it has none (it is manual). */
  get(deviceId: string): Promise<DriveAutomationRecord | null>;
  /** Every drive with stored settings, by id. */
  list(): Promise<DriveAutomationRecord[]>;
  /** Stores the drive's settings whole; keeps its counter. */
  set(deviceId: string, settings: DriveAutomation, updatedBy: string | null): Promise<DriveAutomationRecord>;
  /** Counts one more image for the drive's {counter} and returns the new value (1 for the first). */
  nextCounter(deviceId: string): Promise<number>;
  /**
   * The first archived image made from a disc with this volume id, image size and volume creation
   * time, as recorded by the job that made it; null when there is none. A disc without volume id
   * or creation time is never called a duplicate: too many discs share an empty identity.
   */
  findDuplicate(disc: { volumeId: string | null; sizeBytes: number; createdAt: string | null }): Promise<DuplicateMatch | null>;
  /** The notices waiting on the dashboard, kept across a restart; oldest first. A row that cannot be read is left out. */
  listNotices(): Promise<DiscNotice[]>;
  /** Stores the drive's notice, replacing the one it had. */
  saveNotice(notice: DiscNotice): Promise<void>;
  deleteNotice(driveId: string): Promise<void>;
}

function rowToNotice(row: Selectable<DiscNoticesTable>): DiscNotice | null {
  const notice = fromJson<Partial<DiscNotice> | null>(row.notice);
  if (notice === null || typeof notice !== 'object' || typeof notice.name !== 'string' || typeof notice.sizeBytes !== 'number') return null;
  if (notice.reason !== 'inserted' && notice.reason !== 'duplicate') return null;
  return { ...(notice as DiscNotice), driveId: row.drive_id, at: row.at };
}

function rowToRecord(row: Selectable<DriveAutomationTable>): DriveAutomationRecord {
  return {
    deviceId: row.device_id,
    mode: row.mode,
    name_template: row.name_template,
    read_attempts: row.read_attempts,
    checksums: row.checksums === null ? null : fromJson<HashAlgorithm[]>(row.checksums),
    verify: row.verify === null ? null : row.verify === 1,
    eject: row.eject === 1,
    duplicates: row.duplicates,
    counter: row.counter,
    updatedAt: row.updated_at,
    updatedBy: row.updated_by,
  };
}

export function createAutomationRepository(database: Database, options: { now?: Clock } = {}): AutomationRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  return {
    async get(deviceId) {
      const row = await db.selectFrom('drive_automation').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
      return row === undefined ? null : rowToRecord(row);
    },
    async list() {
      const rows = await db.selectFrom('drive_automation').selectAll().orderBy('device_id').execute();
      return rows.map(rowToRecord);
    },
    async set(deviceId, settings, updatedBy) {
      const values = {
        mode: settings.mode,
        name_template: settings.name_template,
        read_attempts: settings.read_attempts,
        checksums: settings.checksums === null ? null : toJson(settings.checksums),
        verify: settings.verify === null ? null : settings.verify ? 1 : 0,
        eject: settings.eject ? 1 : 0,
        duplicates: settings.duplicates,
        updated_at: timestamp(now()),
        updated_by: updatedBy,
      };
      const row = await db
        .insertInto('drive_automation')
        .values({ device_id: deviceId, ...values })
        .onConflict((conflict) => conflict.column('device_id').doUpdateSet(values))
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToRecord(row);
    },
    async nextCounter(deviceId) {
      const row = await db
        .updateTable('drive_automation')
        .set((eb) => ({ counter: eb('counter', '+', 1) }))
        .where('device_id', '=', deviceId)
        .returning('counter')
        .executeTakeFirst();
      return row?.counter ?? 1;
    },
    async listNotices() {
      const rows = await db.selectFrom('disc_notices').selectAll().orderBy('at').execute();
      return rows.map(rowToNotice).filter((notice): notice is DiscNotice => notice !== null);
    },
    async saveNotice(notice) {
      const values = { at: notice.at, notice: toJson(notice) };
      await db
        .insertInto('disc_notices')
        .values({ drive_id: notice.driveId, ...values })
        .onConflict((conflict) => conflict.column('drive_id').doUpdateSet(values))
        .execute();
    },
    async deleteNotice(driveId) {
      await db.deleteFrom('disc_notices').where('drive_id', '=', driveId).execute();
    },
    async findDuplicate(disc) {
      if (disc.volumeId === null || disc.createdAt === null) return null;
      const rows = await db
        .selectFrom('archives')
        .innerJoin('jobs', 'jobs.id', 'archives.job_id')
        .select(['archives.id', 'archives.filename', 'jobs.options'])
        .where('archives.size_bytes', '=', disc.sizeBytes)
        .orderBy('archives.created_at')
        .execute();
      for (const row of rows) {
        const recorded = fromJson<{ disc?: { volume_id?: string | null; created_at?: string | null } }>(row.options).disc;
        if (recorded?.volume_id === disc.volumeId && recorded.created_at === disc.createdAt) return { archiveId: row.id, filename: row.filename };
      }
      return null;
    },
  };
}

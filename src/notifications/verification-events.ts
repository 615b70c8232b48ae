import type { ArchiveRecord, ArchiveVerificationRecord } from '../archive/model.js';
import type { ArchiveRepository, RecordVerificationInput } from '../db/archive-repository.js';
import type { Database, Executor } from '../db/database.js';
import type { JsonObject, JsonValue } from '../json.js';
import type { DomainEventDraft } from './job-events.js';

const isObject = (value: JsonValue | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * What a verification found per algorithm. A re-hash of the archive (the API, the background worker)
 * records `algorithms` with the catalogue's checksum and the one read now. The check right after
 * imaging records only whether the image read back matched; its actual checksum is known only then.
 */
function checksumsOf(verification: ArchiveVerificationRecord, archive: ArchiveRecord): JsonObject[] {
  const { results } = verification;
  if (Array.isArray(results.algorithms)) {
    return results.algorithms.filter(isObject).map((result) => ({
      algorithm: result.algorithm ?? null,
      expected: result.catalogue ?? result.expected ?? null,
      actual: result.actual ?? null,
      ok: result.ok === true,
    }));
  }
  return Object.entries(archive.checksums).map(([algorithm, expected]) => ({
    algorithm,
    expected: expected ?? null,
    actual: verification.ok ? (expected ?? null) : null,
    ok: verification.ok,
  }));
}

/**
 * One rule for every recorded verification: passed or failed, with the archive entry and, per
 * algorithm, the checksum the archive should have and the one the image has now (bit rot shows as
 * the two differing).
 */
function verificationEvent(archive: ArchiveRecord, verification: ArchiveVerificationRecord): DomainEventDraft {
  return {
    type: verification.ok ? 'verification.passed' : 'verification.failed',
    payload: {
      archive: { id: archive.id, filename: archive.filename, path: archive.path, size_bytes: archive.sizeBytes, status: archive.status },
      verification_id: verification.id,
      trigger: verification.results.source === 'after imaging' ? 'after_imaging' : 'requested',
      requested_by: verification.requestedBy,
      started_at: verification.startedAt,
      finished_at: verification.finishedAt,
      checksums: checksumsOf(verification, archive),
    },
  };
}

/**
 * The archive repository, raising a domain event with every verification it records, in the same
 * transaction: the result and its event are stored together or not at all. Every verifier (after
 * imaging, the background worker, scheduled re-verification) records through here, so each gets
 * its event without knowing of notifications.
 */
export function announceVerifications(
  repository: ArchiveRepository,
  deps: { transaction: Database['transaction']; raiseWithin: (tx: Executor, draft: DomainEventDraft) => Promise<unknown> },
): ArchiveRepository {
  const recordVerificationWithin: ArchiveRepository['recordVerificationWithin'] = async (tx, archiveId, input: RecordVerificationInput) => {
    const verification = await repository.recordVerificationWithin(tx, archiveId, input);
    const archive = await repository.getWithin(tx, archiveId);
    if (archive !== null) await deps.raiseWithin(tx, verificationEvent(archive, verification));
    return verification;
  };
  return {
    ...repository,
    recordVerificationWithin,
    async recordVerification(archiveId, input) {
      return deps.transaction((tx) => recordVerificationWithin(tx, archiveId, input));
    },
  };
}

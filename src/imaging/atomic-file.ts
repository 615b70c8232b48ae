import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export const FILE_MODE = 0o644;

/** Makes a rename or an unlink in `dir` durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Where writeFileAtomic writes `path`'s next content first; a crash in between leaves it behind. */
export function temporaryPathOf(path: string): string {
  return `${path}.tmp`;
}

/**
 * Replaces `path` with `data` so that a crash at any moment leaves either the old or the new
 * content: write `path.tmp`, fsync it, rename it over `path`, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const temporary = temporaryPathOf(path);
  try {
    const handle = await open(temporary, 'w', FILE_MODE);
    try {
      await handle.writeFile(data);
      // The mode argument of open() is filtered by the umask; the sidecars must be 0644 regardless.
      await handle.chmod(FILE_MODE);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await fsyncDirectory(dirname(path));
}

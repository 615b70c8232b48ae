import { openIso9660 } from './image-iso9660.js';
import { type ImageEntry, type ImageTree, openImageWith } from './image-tree.js';
import { openUdf } from './image-udf.js';

export type { ImageEntry, ImageTree } from './image-tree.js';

/**
 * Opens an image file to look inside it, without mounting: UDF first (DVDs and BDs carry their
 * long names there), ISO 9660 when there is no UDF or its variant is unsupported. Errors are
 * DomainErrors with the codes in IMAGE_ERROR_CODES (plus `image_not_found`).
 */
export function openImage(imagePath: string): Promise<ImageTree> {
  return openImageWith(imagePath, [openUdf, openIso9660]);
}

/**
 * Every file and folder of an image, depth first, with its path from the root. Reads as the
 * caller iterates (one folder at a time), so memory stays bounded however large the image.
 */
export async function* listImageEntries(imagePath: string, signal?: AbortSignal): AsyncGenerator<ImageEntry> {
  const tree = await openImage(imagePath);
  try {
    for await (const { node: _node, ...entry } of tree.walk('', signal)) yield entry;
  } finally {
    await tree.close();
  }
}

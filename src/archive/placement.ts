/**
 * Which images this process reads from its own disk. On the embedded database every image is
 * this service's. In the cluster an image records the node whose output folder it was written to
 * (archives.node_id); with a shared output folder (cluster.shared_output) every node reads every
 * image at its path, else only the node that holds it does, and the others stream it from there.
 */
export interface ArchivePlacement {
  /** This node's name; null on the embedded database. */
  node: string | null;
  /** cluster.shared_output: this node sees every node's images at their paths. */
  shared: boolean;
}

/** Every image is read here: the embedded service, or a node of a cluster whose output folder is shared. */
export const READS_EVERY_IMAGE: ArchivePlacement = { node: null, shared: true };

/** Whether this process reads the image of an archive held by `holder` (archives.node_id) itself. */
export function readsImageOf(placement: ArchivePlacement, holder: string | null): boolean {
  return placement.node === null || placement.shared || holder === null || holder === placement.node;
}

/**
 * The node whose archives (and those of no node) this process's background work takes: null when
 * it reads every image. The repositories filter their claims with it.
 */
export function ownImagesOf(placement: ArchivePlacement): string | null {
  return placement.node === null || placement.shared ? null : placement.node;
}

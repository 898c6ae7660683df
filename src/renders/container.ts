// Recognises a video container from its first bytes, so a body that is not a video never reaches S3.

export interface VideoContainer {
  container: 'mp4' | 'mov' | 'webm' | 'mkv' | 'avi'
  ext: string
  contentType: string
}

/** How many leading bytes sniff() wants to see (fewer only when the whole body is shorter). */
export const SNIFF_BYTES = 64

const EBML_MAGIC = Buffer.from([0x1a, 0x45, 0xdf, 0xa3])
// Top-level ISO BMFF / QuickTime boxes a file may start with; old QuickTime files need not open with ftyp.
const QUICKTIME_FIRST_BOXES = new Set(['moov', 'mdat', 'wide', 'free', 'skip', 'pnot'])

/** The container the bytes start with, or undefined when they are not a recognised video container. */
export function sniffVideoContainer (head: Buffer): VideoContainer | undefined {
  if (head.length >= 12) {
    const boxType = head.toString('latin1', 4, 8)
    if (boxType === 'ftyp') {
      const brand = head.toString('latin1', 8, 12)
      return brand === 'qt  '
        ? { container: 'mov', ext: 'mov', contentType: 'video/quicktime' }
        : { container: 'mp4', ext: 'mp4', contentType: 'video/mp4' }
    }
    if (QUICKTIME_FIRST_BOXES.has(boxType) && head.readUInt32BE(0) >= 8) {
      return { container: 'mov', ext: 'mov', contentType: 'video/quicktime' }
    }
    if (head.toString('latin1', 0, 4) === 'RIFF' && head.toString('latin1', 8, 12) === 'AVI ') {
      return { container: 'avi', ext: 'avi', contentType: 'video/x-msvideo' }
    }
  }
  if (head.length >= 4 && head.subarray(0, 4).equals(EBML_MAGIC)) {
    // The EBML header names its DocType early: "webm" for WebM, "matroska" otherwise.
    return head.subarray(0, SNIFF_BYTES).includes('webm', 0, 'latin1')
      ? { container: 'webm', ext: 'webm', contentType: 'video/webm' }
      : { container: 'mkv', ext: 'mkv', contentType: 'video/x-matroska' }
  }
  return undefined
}

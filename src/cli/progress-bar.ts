// A one-line progress bar for uploads, redrawn in place on a terminal and as whole lines (every 10%) elsewhere.

export interface ProgressBar {
  update: (bytesUploaded: number, totalBytes: number, percentage: number) => void
  /** Ends the line (once); safe to call after an error. */
  done: () => void
}

const WIDTH = 30

function formatBytes (bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / 1024
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

/** The bar for one moment: `[#########.....] 64.0% 3.2 MiB/5.0 MiB`. */
export function renderBar (bytesUploaded: number, totalBytes: number, percentage: number): string {
  const filled = Math.min(WIDTH, Math.round((percentage / 100) * WIDTH))
  return `[${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${percentage.toFixed(1).padStart(5)}% ${formatBytes(bytesUploaded)}/${formatBytes(totalBytes)}`
}

export function createProgressBar (stream: NodeJS.WriteStream, label: string): ProgressBar {
  const interactive = stream.isTTY === true
  let lastStep = -1
  let open = false
  return {
    update (bytesUploaded, totalBytes, percentage) {
      const line = `${label} ${renderBar(bytesUploaded, totalBytes, percentage)}`
      if (interactive) {
        stream.write(`\r${line}`)
        open = true
        return
      }
      // A retry starts again from 0; a log file still gets each 10% step once per attempt.
      const step = Math.floor(percentage / 10)
      if (step < lastStep) lastStep = -1
      if (step > lastStep) {
        lastStep = step
        stream.write(`${line}\n`)
      }
    },
    done () {
      if (open) stream.write('\n')
      open = false
    }
  }
}

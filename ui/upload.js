// Uploading a file as the video's next render version through the tus endpoint, with tus-js-client's browser build
// (/ui/vendor/tus.min.js, the global `tus`). Resumable three ways: a dropped connection is retried from the server's
// Upload-Offset (HEAD) with backoff; Pause/Resume; and after a reload, choosing the same file again finds its upload
// URL in localStorage (tus-js-client's fingerprint of name, type, size, mtime and endpoint) and continues it.
import { authHeaders, paths } from './api.js'
import { el, formatBytes } from './dom.js'

// Bytes per PATCH. The server keeps every byte that reaches it, so a drop loses at most what was in flight either
// way; finite chunks add checkpoints and keep each request under the body limits of proxies on the way.
// sessionStorage 'render-store.uploadChunkBytes' overrides it (the browser test cuts a small upload between chunks).
const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024
const CHUNK_STORAGE = 'render-store.uploadChunkBytes'
// After a drop: retry at once, then back off; about a minute in all before the page gives up and offers Resume.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 20000]

function chunkBytes () {
  const value = Number(sessionStorage.getItem(CHUNK_STORAGE))
  return Number.isSafeInteger(value) && value > 0 ? value : DEFAULT_CHUNK_BYTES
}

/** A tus error as the service's problem detail when it answered, else as a connection failure. */
function describe (error) {
  const response = error.originalResponse
  if (response === undefined || response === null || response.getStatus() === 0) return 'the connection failed'
  let detail = ''
  try {
    const problem = JSON.parse(response.getBody())
    detail = problem.detail ?? problem.title ?? ''
  } catch {}
  return `${response.getStatus()}${detail === '' ? '' : `: ${detail}`}`
}

/** The "Upload a render" section; `onUploaded(version)` runs once the upload became a render version. */
export function uploadSection (projectId, videoId, signal, onUploaded) {
  if (typeof globalThis.tus?.Upload !== 'function' || !globalThis.tus.isSupported) {
    return el('section', { id: 'upload' }, el('h2', {}, 'Upload a render'), el('p', { class: 'hint' }, 'This browser cannot upload (tus is not supported).'))
  }
  const input = el('input', { type: 'file', id: 'upload-file', accept: 'video/*', 'aria-label': 'video file' })
  const start = el('button', { type: 'button', id: 'upload-start', disabled: true }, 'Upload')
  const pause = el('button', { type: 'button', id: 'upload-pause', hidden: true }, 'Pause')
  const bar = el('progress', { id: 'upload-bar', max: 100, value: 0 })
  const text = el('p', { class: 'meta', id: 'upload-text' }, 'Choose a video file to store it as the next render version.')
  const section = el('section', { id: 'upload', 'data-state': 'idle' },
    el('h2', {}, 'Upload a render'), el('div', { class: 'upload-controls' }, input, start, pause), bar, text)
  let upload
  let sent = 0

  const state = (name, message) => {
    section.dataset.state = name
    if (message !== undefined) text.textContent = message
    pause.hidden = name !== 'uploading' && name !== 'retrying'
    start.hidden = !pause.hidden
    start.textContent = name === 'paused' || name === 'failed' ? 'Resume' : 'Upload'
    start.disabled = input.files.length === 0
    input.disabled = name === 'uploading' || name === 'retrying' || name === 'paused'
  }
  const progressText = (total) => `${formatBytes(sent)} of ${formatBytes(total)} (${Math.floor((sent / total) * 100)}%)`

  const begin = async () => {
    const file = input.files[0]
    sent = 0
    upload = new globalThis.tus.Upload(file, {
      endpoint: paths.tus(projectId, videoId),
      chunkSize: chunkBytes(),
      retryDelays: RETRY_DELAYS,
      headers: authHeaders(),
      metadata: { filename: file.name, ...(file.type === '' ? {} : { filetype: file.type }) },
      removeFingerprintOnSuccess: true,
      onProgress: (bytesSent, bytesTotal) => {
        sent = bytesSent
        bar.value = Math.floor((bytesSent / bytesTotal) * 100)
        if (section.dataset.state !== 'paused') state('uploading', `uploading: ${progressText(bytesTotal)}`)
      },
      onShouldRetry: (error, attempt) => {
        // tus-js-client's own rule (not for 4xx other than 409/423; online), and say that the page is retrying.
        const status = error.originalResponse?.getStatus() ?? 0
        const retry = (status < 400 || status >= 500 || status === 409 || status === 423) && navigator.onLine !== false
        if (retry) state('retrying', `${describe(error)}; resuming from the server's offset (attempt ${attempt + 1} of ${RETRY_DELAYS.length})`)
        return retry
      },
      onError: (error) => {
        if (signal.aborted) return
        const status = error.originalResponse?.getStatus() ?? 0
        const reason = describe(error).replace(/\.$/, '')
        state('failed', status >= 400 && status < 500
          ? `upload refused at ${progressText(file.size)}: ${reason}.`
          : `upload stopped at ${progressText(file.size)}: ${reason}. Resume continues from what the server has.`)
      },
      onSuccess: ({ lastResponse }) => {
        const version = lastResponse.getHeader('X-Render-Version')
        bar.value = 100
        section.dataset.version = version ?? ''
        state('done', `stored ${file.name} (${formatBytes(file.size)}) as render v${version ?? '?'}`)
        input.value = ''
        start.disabled = true
        onUploaded(version)
      }
    })
    const previous = await upload.findPreviousUploads()
    if (previous.length > 0) {
      previous.sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)))
      upload.resumeFromPreviousUpload(previous[0])
      section.dataset.resumed = 'true'
    } else {
      delete section.dataset.resumed
    }
    state('uploading', previous.length > 0 ? `resuming an earlier upload of ${file.name}…` : `starting ${file.name}…`)
    upload.start()
  }

  input.addEventListener('change', () => {
    upload = undefined
    bar.value = 0
    state('idle', input.files.length === 0 ? 'Choose a video file.' : `${input.files[0].name}, ${formatBytes(input.files[0].size)}: ready to upload.`)
  })
  start.addEventListener('click', () => {
    if (upload !== undefined && (section.dataset.state === 'paused' || section.dataset.state === 'failed')) {
      state('uploading', `resuming at ${progressText(input.files[0].size)}…`)
      upload.start()
    } else {
      begin().catch((error) => state('failed', error.message))
    }
  })
  pause.addEventListener('click', () => {
    upload.abort().catch(() => {})
    state('paused', `paused at ${progressText(input.files[0].size)}`)
  })
  // Leaving the video's page stops sending but keeps the upload on the server (and its URL here) for a later resume.
  signal.addEventListener('abort', () => { upload?.abort().catch(() => {}) })
  return section
}

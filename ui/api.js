// The page's calls to render-store: JSON, text, and Server-Sent Events read through fetch (so a bearer key can go along).

const KEY_STORAGE = 'render-store.apiKey'

export function apiKey () {
  return sessionStorage.getItem(KEY_STORAGE) ?? ''
}

export function setApiKey (value) {
  if (value === '') sessionStorage.removeItem(KEY_STORAGE)
  else sessionStorage.setItem(KEY_STORAGE, value)
}

/** The Authorization header when a key is set: every call of the page, tus uploads included, sends it the same way. */
export function authHeaders () {
  return apiKey() === '' ? {} : { authorization: `Bearer ${apiKey()}` }
}

function headers (accept) {
  return { accept, ...authHeaders() }
}

export class ApiError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

async function request (path, accept, signal) {
  const response = await fetch(path, { headers: headers(accept), signal })
  if (!response.ok) {
    let detail = response.statusText
    try {
      const problem = await response.json()
      detail = problem.detail ?? problem.title ?? detail
    } catch {}
    throw new ApiError(response.status, `${response.status}: ${detail}`)
  }
  return response
}

export async function getJson (path, signal) {
  return (await request(path, 'application/json', signal)).json()
}

export async function getText (path, accept, signal) {
  return (await request(path, accept, signal)).text()
}

/** Calls onEvent(name, data) for each event of an SSE stream until it ends or the signal aborts. */
export async function readEvents (path, onEvent, signal) {
  const response = await request(path, 'text/event-stream', signal)
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffered = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffered += value
    let end
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const block = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      let name = 'message'
      const data = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
      }
      if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')))
    }
  }
}

export const paths = {
  videos: (projectId) => `/v1/projects/${encodeURIComponent(projectId)}/videos?limit=100`,
  video: (projectId, videoId) => `/v1/projects/${encodeURIComponent(projectId)}/videos/${encodeURIComponent(videoId)}`,
  renders: (projectId, videoId) => `${paths.video(projectId, videoId)}/renders?limit=20`,
  render: (projectId, videoId, version) => `${paths.video(projectId, videoId)}/renders/${encodeURIComponent(version)}`,
  tus: (projectId, videoId) => `${paths.video(projectId, videoId)}/tus`,
  codeVersions: (projectId, videoId) => `${paths.video(projectId, videoId)}/code/versions?limit=100`,
  diff: (projectId, videoId, from, to) => `${paths.video(projectId, videoId)}/code/versions/${to}/diff?from=${from}`,
  progress: (projectId, videoId) => `${paths.video(projectId, videoId)}/progress`
}

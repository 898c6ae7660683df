// The render-store page: #/p/{projectId} lists a project's videos, #/p/{projectId}/v/{videoId} shows one video's
// renders (playable through presigned URLs), its code versions with a diff, and its newest upload's live progress.
import { ApiError, apiKey, getJson, getText, paths, readEvents, setApiKey } from './api.js'
import { diffView, el, formatBytes, formatTime } from './dom.js'
import { uploadSection } from './upload.js'

const view = document.getElementById('view')
const TERMINAL = new Set(['completed', 'failed', 'aborted', 'expired'])
let pageController = new AbortController()

function show (...nodes) {
  view.replaceChildren(...nodes)
}

function errorBox (error) {
  const message = error instanceof ApiError && error.status === 401 ? `${error.message} (set the API key above)` : error.message
  return el('p', { class: 'error', role: 'alert' }, message)
}

async function projectPage (projectId, signal) {
  show(el('section', {}, el('h2', {}, `Project ${projectId}`), el('p', { class: 'hint' }, 'Loading videos…')))
  const { items: newestCreated } = await getJson(paths.videos(projectId), signal)
  // The API lists videos newest created first; the table's last column is "Updated", so show the most recently
  // updated first (within the page shown).
  const items = [...newestCreated].sort((a, b) => String(b.updatedAt ?? '').localeCompare(String(a.updatedAt ?? '')))
  const rows = items.map((video) => el('tr', {},
    el('td', {}, el('a', { class: 'video-link', href: `#/p/${encodeURIComponent(projectId)}/v/${encodeURIComponent(video.videoId)}` }, video.videoId)),
    el('td', {}, video.title ?? ''),
    el('td', {}, el('span', { class: 'status' }, video.status)),
    el('td', {}, video.latestRenderVersion ?? '-'),
    el('td', {}, video.latestCodeVersion ?? '-'),
    el('td', {}, formatTime(video.updatedAt))))
  show(el('section', { id: 'videos' },
    el('h2', {}, `Project ${projectId}: ${items.length} video${items.length === 1 ? '' : 's'}`),
    items.length === 0
      ? el('p', { class: 'hint' }, 'No videos yet.')
      : el('table', {}, el('thead', {}, el('tr', {}, ['Video', 'Title', 'Status', 'Render', 'Code', 'Updated'].map((name) => el('th', {}, name)))), el('tbody', {}, rows))))
}

/** A render version's scene clips (the list answer has only their count; the single render has the clips). */
function sceneList (scenes) {
  return el('ol', { class: 'scenes' }, scenes.map((scene) => el('li', { class: 'scene', 'data-scene': scene.sceneNumber },
    el('video', { controls: true, preload: 'metadata', muted: true, playsinline: true, src: `${scene.downloadUrl}#t=0.1` }),
    el('div', { class: 'meta' }, el('strong', {}, `scene ${scene.sceneNumber}`), ` · ${formatBytes(scene.sizeBytes)}`))))
}

function renderCard (render, scenes) {
  return el('figure', { class: 'render', 'data-version': render.version },
    el('video', { controls: true, preload: 'auto', muted: true, playsinline: true, src: render.downloadUrl }),
    el('figcaption', {},
      el('strong', {}, `v${render.version}`), ' ', el('span', { class: 'status' }, render.status ?? ''),
      render.sceneCount > 0 ? el('span', { class: 'meta' }, ` · ${render.sceneCount} scene${render.sceneCount === 1 ? '' : 's'}`) : null,
      el('div', { class: 'meta' }, `${formatBytes(render.sizeBytes)} · ${render.contentType ?? ''} · `, formatTime(render.createdAt)),
      el('div', { class: 'meta' }, `sha256 ${render.sha256 ?? '-'}`)),
    scenes?.length > 0 ? sceneList(scenes) : null)
}

async function rendersSection (projectId, videoId, signal) {
  const section = el('section', { id: 'renders' }, el('h2', {}, 'Renders'))
  const { items } = await getJson(paths.renders(projectId, videoId), signal)
  const scenes = await Promise.all(items.map(async (render) => render.sceneCount > 0
    ? (await getJson(paths.render(projectId, videoId, render.version), signal)).scenes ?? []
    : []))
  section.append(items.length === 0 ? el('p', { class: 'hint' }, 'No renders yet.') : el('div', { class: 'renders' }, items.map((render, i) => renderCard(render, scenes[i]))))
  return section
}

async function codeSection (projectId, videoId, signal) {
  const section = el('section', { id: 'code' }, el('h2', {}, 'Code versions'))
  const { items } = await getJson(paths.codeVersions(projectId, videoId), signal)
  if (items.length === 0) {
    section.append(el('p', { class: 'hint' }, 'No code yet.'))
    return section
  }
  section.append(el('table', {},
    el('thead', {}, el('tr', {}, ['Version', 'File', 'Size', 'Message', 'Created'].map((name) => el('th', {}, name)))),
    el('tbody', {}, items.map((code) => el('tr', {},
      el('td', {}, `v${code.version}`), el('td', {}, code.filename ?? ''), el('td', {}, formatBytes(code.sizeBytes)),
      el('td', {}, code.message ?? ''), el('td', {}, formatTime(code.createdAt)))))))
  if (items.length < 2) return section

  const options = (selected) => items.map((code) => el('option', { value: code.version, selected: code.version === selected }, `v${code.version}`))
  const from = el('select', { id: 'diff-from', 'aria-label': 'from version' }, options(items[1].version))
  const to = el('select', { id: 'diff-to', 'aria-label': 'to version' }, options(items[0].version))
  const output = el('div', { id: 'diff-output' })
  const showDiff = async () => {
    try {
      output.replaceChildren(diffView(await getText(paths.diff(projectId, videoId, from.value, to.value), 'text/x-diff', signal)))
    } catch (error) {
      if (!signal.aborted) output.replaceChildren(errorBox(error))
    }
  }
  section.append(el('div', { class: 'diff-controls' }, 'Diff from ', from, ' to ', to, el('button', { type: 'button', id: 'show-diff', onclick: showDiff }, 'Show diff')), output)
  await showDiff()
  return section
}

/** The newest upload's progress: one read, then live Server-Sent Events while it is still going. */
function progressSection (projectId, videoId, signal) {
  const bar = el('progress', { max: 100, value: 0 })
  const text = el('p', { class: 'meta', id: 'progress-text' }, 'Looking for uploads…')
  const section = el('section', { id: 'progress' }, el('h2', {}, 'Upload progress'), bar, text)
  const update = (progress) => {
    bar.value = progress.percentage
    text.textContent = `${progress.status}: ${formatBytes(progress.bytesUploaded)} of ${formatBytes(progress.totalBytes)} (${progress.percentage}%) · upload ${progress.uploadId}`
    section.dataset.status = progress.status
  }
  const follow = async () => {
    try {
      const first = await getJson(paths.progress(projectId, videoId), signal)
      update(first)
      if (TERMINAL.has(first.status)) return
      await readEvents(paths.progress(projectId, videoId), (name, data) => { if (name === 'progress') update(data) }, signal)
    } catch (error) {
      if (signal.aborted) return
      if (error instanceof ApiError && error.status === 404) text.textContent = 'No uploads yet.'
      else text.replaceChildren(errorBox(error))
    }
  }
  follow()
  return section
}

async function videoPage (projectId, videoId, signal) {
  show(el('section', {}, el('h2', {}, `${projectId} / ${videoId}`), el('p', { class: 'hint' }, 'Loading…')))
  const video = await getJson(paths.video(projectId, videoId), signal)
  const summary = el('section', { id: 'video' },
    el('h2', {}, el('a', { href: `#/p/${encodeURIComponent(projectId)}` }, projectId), ' / ', videoId, video.title ? ` — ${video.title}` : ''),
    el('p', {}, el('span', { class: 'status', id: 'video-status' }, video.status), ' ',
      el('span', { class: 'meta' }, `latest render v${video.latestRenderVersion ?? '-'} · latest code v${video.latestCodeVersion ?? '-'} · updated `, formatTime(video.updatedAt))),
    video.description ? el('p', {}, video.description) : null,
    video.tags?.length > 0 ? el('p', { class: 'meta' }, `tags: ${video.tags.join(', ')}`) : null)
  const [renders, code] = await Promise.all([rendersSection(projectId, videoId, signal), codeSection(projectId, videoId, signal)])
  // After an upload from this page: follow the newest upload's progress again and list the new render version.
  const uploaded = async () => {
    const fresh = await rendersSection(projectId, videoId, signal)
    document.getElementById('renders')?.replaceWith(fresh)
    document.getElementById('progress')?.replaceWith(progressSection(projectId, videoId, signal))
  }
  show(summary, uploadSection(projectId, videoId, signal, uploaded), progressSection(projectId, videoId, signal), renders, code)
}

async function route () {
  pageController.abort()
  pageController = new AbortController()
  const { signal } = pageController
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent)
  try {
    if (parts[0] === 'p' && parts[1] && parts[2] === 'v' && parts[3]) {
      document.getElementById('project-input').value = parts[1]
      await videoPage(parts[1], parts[3], signal)
    } else if (parts[0] === 'p' && parts[1]) {
      document.getElementById('project-input').value = parts[1]
      await projectPage(parts[1], signal)
    } else {
      show(el('p', { class: 'hint' }, 'Type a project id to see its videos, their renders and code versions.'))
    }
  } catch (error) {
    if (!signal.aborted) show(errorBox(error))
  }
}

document.getElementById('project-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const projectId = document.getElementById('project-input').value.trim()
  if (projectId !== '') location.hash = `#/p/${encodeURIComponent(projectId)}`
})
const keyInput = document.getElementById('api-key')
keyInput.value = apiKey()
keyInput.addEventListener('change', () => { setApiKey(keyInput.value.trim()); route() })
window.addEventListener('hashchange', route)
route()

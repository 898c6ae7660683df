// Building DOM nodes without innerHTML: every value from the service becomes text, never markup.

export function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value)
    else node.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    node.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return node
}

export function formatBytes (bytes) {
  if (typeof bytes !== 'number') return '-'
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

/** A date and time as one unbreakable <time> (a narrow column must never split "7:08 PM" as "P" / "M"). */
export function formatTime (iso) {
  if (typeof iso !== 'string') return '-'
  const date = new Date(iso)
  return el('time', { datetime: iso }, Number.isNaN(date.getTime()) ? iso : date.toLocaleString())
}

/** A unified diff as lines classed add / del / hunk / file for colouring. */
export function diffView (text) {
  const lines = text.replace(/\n$/, '').split('\n').map((line) => {
    const kind = line.startsWith('+++') || line.startsWith('---') || line.startsWith('Index:') || line.startsWith('====')
      ? 'file'
      : line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : 'context'
    return el('span', { class: kind }, line === '' ? ' ' : line)
  })
  return el('pre', { class: 'diff', id: 'diff' }, lines)
}

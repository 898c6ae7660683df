/** Reads a text/event-stream answer to its end, handing each `progress` event's data (parsed JSON) to `onEvent`. */
export async function readProgressEvents<T> (response: Response, onEvent: (event: T) => void): Promise<void> {
  const decoder = new TextDecoder()
  let buffered = ''
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true })
    let end
    while ((end = buffered.indexOf('\n\n')) !== -1) {
      const block = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      const data = block.split('\n').find((line) => line.startsWith('data: '))
      if (block.includes('event: progress') && data !== undefined) onEvent(JSON.parse(data.slice(6)) as T)
    }
  }
}

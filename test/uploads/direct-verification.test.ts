// A direct single-PUT upload whose object is not what was declared. Which side refuses it depends on the backend,
// and each case says which it expects: real S3 (the strict tier's Ceph RGW) checks the presigned signature, which
// covers the declared length and content type, and refuses the PUT with 403, so `complete` finds nothing uploaded
// and the session stays open for a good PUT; s3rver (the embedded tier) checks no signature and stores anything, so
// the service's own verification at `complete` must catch it (the object is deleted and the session fails). Bytes
// that are signed correctly but wrong (SHA-256, not a video) reach the service's checks on both.
import t, { type Test } from 'tap'
import { ListObjectsV2Command } from '@aws-sdk/client-s3'
import { onStrictBackend } from '../helper.js'
import { fakeMp4, listenForDirectUploads, sha256 } from '../support/direct-session.js'

const backend = onStrictBackend() ? 'strict' : 'embedded'

t.test(`an object that is not what was declared (${backend} backend)`, async (t) => {
  const { app, api, uploads } = await listenForDirectUploads(t)
  const keysUnder = async (prefix: string): Promise<string[]> =>
    ((await app.aws.s3.send(new ListObjectsV2Command({ Bucket: app.config.videoBucket, Prefix: prefix }))).Contents ?? []).map((object) => object.Key as string)
  const nothingCommitted = async (t: Test, videoId: string): Promise<void> => {
    t.same(await keysUnder(`videos/p1/${videoId}/`), [], 'no render object')
    t.same(await keysUnder(`staging/p1/${videoId}/`), [], 'no staged object')
    t.equal((await api('GET', `/v1/projects/p1/videos/${videoId}`)).json?.latestRenderVersion ?? null, null, 'no render version')
  }

  const bytes = fakeMp4(4096)
  const cases = [
    // Signed wrongly: real S3 refuses the PUT itself.
    { name: 'fewer bytes than declared', videoId: 'short', request: { sizeBytes: 5000, contentType: 'video/mp4' }, body: bytes, headers: undefined, signedWrong: true, status: 400, detail: /4096 bytes/ },
    { name: 'a content type other than signed', videoId: 'ctype', request: { sizeBytes: bytes.length, contentType: 'video/mp4' }, body: bytes, headers: { 'Content-Type': 'video/webm' }, signedWrong: true, status: 415, detail: /video\/webm/ },
    // Signed correctly: only the service can tell.
    { name: 'a SHA-256 other than declared', videoId: 'sha', request: { sizeBytes: bytes.length, contentType: 'video/mp4', sha256: sha256(Buffer.from('other')) }, body: bytes, headers: undefined, signedWrong: false, status: 400, detail: /SHA-256/ },
    { name: 'not a video', videoId: 'text', request: { sizeBytes: 4096, contentType: 'video/mp4' }, body: Buffer.alloc(4096, 'a'), headers: undefined, signedWrong: false, status: 415, detail: /not a video container/ }
  ]
  for (const { name, videoId, request, body, headers, signedWrong, status, detail } of cases) {
    t.test(name, async (t) => {
      const opened = await api('POST', uploads(videoId), request)
      t.equal(opened.status, 201)
      const plan = opened.json as { uploadId: string, url: string, headers: Record<string, string> }
      const put = await fetch(plan.url, { method: 'PUT', headers: headers ?? plan.headers, body: new Uint8Array(body) })
      const completed = await api('POST', `${uploads(videoId)}/${plan.uploadId}/complete`, {})
      if (signedWrong && backend === 'strict') {
        t.equal(put.status, 403, 'real S3 refuses the PUT at the signature')
        t.match(await put.text(), /SignatureDoesNotMatch/)
        t.equal(completed.status, 400, 'complete: a 4xx')
        t.match(completed.json.detail, /nothing has been uploaded/, 'that says nothing valid was uploaded')
        t.match((await api('GET', `${uploads(videoId)}/${plan.uploadId}`)).json, { status: 'pending' }, 'the session stays open for a good PUT')
      } else {
        t.equal(put.status, 200, signedWrong ? 'the embedded S3 checks no signature and takes the PUT' : 'the PUT is signed correctly and taken')
        t.equal(completed.status, status, 'complete: the service\'s own check refuses it')
        t.match(completed.json.detail, detail)
        t.match((await api('GET', `${uploads(videoId)}/${plan.uploadId}`)).json, { status: 'failed', lastError: detail }, 'the session fails')
      }
      await nothingCommitted(t, videoId)
    })
  }
})

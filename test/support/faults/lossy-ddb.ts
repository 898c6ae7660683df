// Faults of the DynamoDB connection that no local server can make on cue: an answer lost after the request landed,
// an SDK retry of a request that landed, a partition (or the whole table) that stops answering. The document client
// keeps its real `send`; the wrapper decides per command whether to pass it on, lose its answer, or refuse it.
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb'

/** What a cut connection looks like to the SDK's caller: a Node socket error (not retried further by our code). */
export function connectionReset (): Error {
  return Object.assign(new Error('socket hang up (fake: the connection was reset)'), { code: 'ECONNRESET' })
}

export interface SentCommand {
  name: string
  input: Record<string, unknown>
}

type Match = (command: SentCommand) => boolean

interface Rule {
  match: Match
  times: number
  act: 'lose-answer' | 'retry-after-landing' | 'refuse'
  error: () => Error
}

/** The command's class name and input (lib-dynamodb commands keep both). */
const describe = (command: unknown): SentCommand => ({
  name: (command as { constructor: { name: string } }).constructor.name,
  input: (command as { input?: Record<string, unknown> }).input ?? {}
})

/** The conditional PutItem of a version commit (src/versions/store.ts) of this kind, optionally of one video. */
export const isVersionCommit = (kind: 'CODE' | 'RENDER', pk?: string): Match => ({ name, input }) => {
  const item = input.Item as Record<string, unknown> | undefined
  return name === 'PutCommand' && typeof item?.sk === 'string' && item.sk.startsWith(`${kind}#`) && (pk === undefined || item.pk === pk)
}

/** Any command on the items of one partition (its Key, Item or key condition names that pk). */
export const onPartition = (pk: string): Match => ({ input }) => {
  const key = (input.Key ?? input.Item) as Record<string, unknown> | undefined
  if (key !== undefined) return key.pk === pk
  const values = input.ExpressionAttributeValues as Record<string, unknown> | undefined
  return values?.[':pk'] === pk
}

export const anyCommand: Match = () => true

/**
 * Wraps a document client's `send` (in place; the client is otherwise real). Rules apply in the order added, each
 * for its number of matching commands; `sent` records every command that reached DynamoDB.
 */
export class LossyDdb {
  readonly sent: SentCommand[] = []
  readonly refused: SentCommand[] = []
  private readonly rules: Rule[] = []
  private readonly holds: Array<{ match: Match, arrive: () => void, gate: Promise<void> }> = []
  private readonly realSend: (command: unknown) => Promise<unknown>
  /** called after a lost answer's command landed, before its error is thrown (e.g. to cut the table off next) */
  afterLostAnswer?: (command: SentCommand) => void

  constructor (readonly ddb: DynamoDBDocumentClient) {
    this.realSend = ddb.send.bind(ddb) as (command: unknown) => Promise<unknown>
    ddb.send = (async (command: unknown) => await this.send(command)) as typeof ddb.send
  }

  /** The request is sent and lands; its answer never arrives (the caller sees a connection reset). */
  loseAnswer (match: Match, times = 1): this {
    this.rules.push({ match, times, act: 'lose-answer', error: connectionReset })
    return this
  }

  /** The request lands, its answer is lost, and the SDK sends it again: the caller sees what the second send answers. */
  retryAfterLanding (match: Match, times = 1): this {
    this.rules.push({ match, times, act: 'retry-after-landing', error: connectionReset })
    return this
  }

  /** The request never reaches DynamoDB: the caller sees `error` (a connection reset unless given). */
  refuse (match: Match, times = Infinity, error: () => Error = connectionReset): this {
    this.rules.push({ match, times, act: 'refuse', error })
    return this
  }

  /**
   * The next matching command waits before it is sent, until `release` (it is then sent as usual): the caller sees a
   * slow request, and the test may act while it waits (`reached` resolves when it starts waiting).
   */
  hold (match: Match): { reached: Promise<void>, release: () => void } {
    let release = (): void => {}
    let arrive = (): void => {}
    const reached = new Promise<void>((resolve) => { arrive = resolve })
    const gate = new Promise<void>((resolve) => { release = resolve })
    this.holds.push({ match, arrive, gate })
    return { reached, release }
  }

  /** Every fault is gone: commands pass as they are. */
  heal (): void {
    this.rules.length = 0
  }

  private async send (command: unknown): Promise<unknown> {
    const described = describe(command)
    const held = this.holds.findIndex((candidate) => candidate.match(described))
    if (held !== -1) {
      const [{ arrive, gate }] = this.holds.splice(held, 1)
      arrive()
      await gate
    }
    const rule = this.rules.find((candidate) => candidate.times > 0 && candidate.match(described))
    if (rule === undefined) {
      this.sent.push(described)
      return await this.realSend(command)
    }
    rule.times--
    if (rule.act === 'refuse') {
      this.refused.push(described)
      throw rule.error()
    }
    this.sent.push(described)
    await this.realSend(command)
    if (rule.act === 'retry-after-landing') {
      this.sent.push(described)
      return await this.realSend(command)
    }
    this.afterLostAnswer?.(described)
    throw rule.error()
  }
}

// The README's curl examples (its "## API at a glance" sh blocks) and a non-blocking bash runner for them: used by
// test/contract/readme-curl.test.ts (against the service) and test/contract/prism-proxy.test.ts (through Prism's validating proxy).
import { spawn } from 'node:child_process'

export const HEADING = '## API at a glance'

/** The curl lines of the README section (continuation lines joined), or undefined when it has none yet. */
export function readmeCurlExamples (readme: string): string[] | undefined {
  const start = readme.indexOf(`\n${HEADING}\n`)
  if (start === -1) return undefined
  const rest = readme.slice(start + HEADING.length + 2)
  const section = rest.slice(0, rest.search(/\n## /) === -1 ? undefined : rest.search(/\n## /))
  const lines: string[] = []
  for (const block of section.matchAll(/```(?:sh|bash|shell)\n([\s\S]*?)```/g)) {
    const joined = block[1].replace(/\s*\\\n\s*/g, ' ')
    lines.push(...joined.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('curl ')))
  }
  return lines.length > 0 ? lines : undefined
}

/** bash -c as a child process, without blocking the event loop the service under test runs on. */
export async function bash (script: string, cwd: string, env: Record<string, string>): Promise<{ status: number | null, stdout: string, stderr: string }> {
  const child = spawn('bash', ['-c', script], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { status, stdout, stderr }
}

// The DynamoDB layout every store shares, in one import: keys and object keys (keys.ts), the video record
// (video-record.ts), and the checks of a conditional write (conditions.ts).
export * from './keys.js'
export * from './video-record.js'
export * from './conditions.js'

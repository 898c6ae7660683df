# syntax=docker/dockerfile:1
# render-store: build the TypeScript in one stage, run the compiled JavaScript with production dependencies only.
# Node 24 LTS (package.json engines: >=22; several dependencies, and the AWS SDK from 2027, need 22 or newer).
# `npm ci --omit=dev` leaves out the test and contract tools (tap, newman, Redocly, Prism, eslint, ...) and the agents'
# LangChain packages (optional peer dependencies of the `render-store/agents` entry point, which the server never
# imports). One Dockerfile, two images, chosen by the EMBEDDED build argument:
#   docker build .                          the embedded default (DATA_DIR below): keeps the optional s3rver + dynalite
#   docker build --build-arg EMBEDDED=false .   the AWS image: --omit=optional too, no emulators; it must be given
#                                           AWS_S3_VIDEO_BUCKET/AWS_S3_CODE_BUCKET (without them it exits 78, one line)

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# .dockerignore keeps node_modules, dist, data and tests out of the context.
COPY . .
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ARG EMBEDDED=true
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/.data \
    LOG_FORMAT=json
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev $([ "$EMBEDDED" = true ] || echo --omit=optional) --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY ui ./ui
# The embedded S3/DynamoDB keep their data here; a volume keeps it across container restarts.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
VOLUME ["/app/.data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/bundle/server.js"]

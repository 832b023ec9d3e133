# The service image: `docker compose up` (docker-compose.yml) runs two of it behind HAProxy.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# npm ci runs postinstall: patch-package (patches/) and prisma generate (prisma/)
COPY package.json package-lock.json prisma.config.ts ./
COPY patches ./patches
COPY prisma ./prisma
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production DATA_DIR=/app/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# read at run time: migrations (applied at start-up) and the API document served at /docs
COPY prisma ./prisma
COPY openapi ./openapi
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000 1883 8883 8083 8084
# SIGTERM (docker stop) closes the clients' connections and flushes the session store, then exits 0
STOPSIGNAL SIGTERM
# the same node flags as `npm start` (package.json; README, "Performance": a young generation of 8 MiB)
CMD ["node", "--min-semi-space-size=8", "--no-memory-reducer", "--heap-growing-percent=100", "dist/src/main.js"]

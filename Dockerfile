# One image for every control-plane service; the compose file picks the entry point (`node <service>/dist/main.js`).
# Built on the full Debian image (compilers, should a dependency need a native build), run on the slim one.
FROM node:24-bookworm AS build
WORKDIR /app
# .dockerignore keeps node_modules, dist, .git and .env out of the context.
COPY . .
# Type declarations and source maps are for building only: without them the image holds half the files.
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.map' \) -exec rm -f {} +

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# A new named volume takes the owner of the image's directory at its mount point: without this /data would be root's
# and the observer (running as node) could not write its snapshot there.
RUN mkdir /data && chown node:node /data
VOLUME /data
USER node
WORKDIR /app
ENTRYPOINT ["node"]
# Last, so every step above stays small and cached: the built app, owned by root, read-only to the node user.
COPY --from=build /app /app

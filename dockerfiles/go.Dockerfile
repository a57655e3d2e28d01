
# The builder runs on the build machine's platform and cross-compiles for TARGETPLATFORM.
FROM --platform=$BUILDPLATFORM {{GO_IMAGE}} AS builder
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
{{CGO}}
COPY --from=kiln /opt/kiln/bin/kiln /usr/local/bin/kiln
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY {{MANIFESTS}} ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# The cross-compile and the inspector gate; secrets only through --secret (never ARG/ENV).
{{CGO_IGNORE}}
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=secret,id=netrc,target=/root/.netrc,required=false \
    kiln build {{KILN_BUILD_ARGS}}--platform "${TARGETPLATFORM}" --out-dir /out \
    && mkdir -p /dist \
    && cp -a "/out/${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}/." /dist/

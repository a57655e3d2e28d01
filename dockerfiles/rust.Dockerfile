
# The builder runs on the build machine's platform and cross-compiles for TARGETPLATFORM.
FROM --platform=$BUILDPLATFORM {{RUST_IMAGE}} AS builder
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG ZIG_VERSION={{ZIG_VERSION}}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m pip install --no-cache-dir --break-system-packages "ziglang==${ZIG_VERSION}"
COPY --from=kiln /opt/kiln/bin/kiln /usr/local/bin/kiln
WORKDIR /src
# Dependencies first: this layer is reused until the manifests change.
COPY {{MANIFESTS}} ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    mkdir -p src && touch src/main.rs src/lib.rs \
    && cargo fetch{{FETCH_FLAGS}} \
    && rm -rf src
COPY . .
# The cross-compile and the inspector gate; secrets only through --secret (never ARG/ENV).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=kiln-target-${TARGETARCH}${TARGETVARIANT} \
    --mount=type=secret,id=cargo-registry-token,required=false \
    CARGO_REGISTRY_TOKEN="$(cat /run/secrets/cargo-registry-token 2>/dev/null || true)" \
    kiln build {{KILN_BUILD_ARGS}}--platform "${TARGETPLATFORM}" --out-dir /out \
    && mkdir -p /dist \
    && cp -a "/out/${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}/." /dist/


# The builder runs on the build machine's platform and cross-compiles for TARGETPLATFORM.
FROM --platform=$BUILDPLATFORM {{C_IMAGE}} AS builder
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG ZIG_VERSION={{ZIG_VERSION}}
RUN apt-get update \
    && apt-get install -y --no-install-recommends {{C_PACKAGES}} \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m pip install --no-cache-dir --break-system-packages "ziglang==${ZIG_VERSION}"
COPY --from=kiln /opt/kiln/bin/kiln /usr/local/bin/kiln
WORKDIR /src
COPY . .
# The cross-compile (zig cc per target) and the inspector gate; secrets only through --secret.
RUN --mount=type=cache,target=/root/.cache \
    --mount=type=secret,id=build-token,required=false \
    kiln build {{KILN_BUILD_ARGS}}--platform "${TARGETPLATFORM}" --out-dir /out \
    && mkdir -p /dist \
    && cp -a "/out/${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}/." /dist/

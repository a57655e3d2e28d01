
# The binaries for TARGETPLATFORM in /dist/, compiled above or taken from dist/.
FROM scratch AS artifacts-build
COPY --from=builder /dist/ /dist/

FROM scratch AS artifacts-local
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
COPY dist/${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}/ /dist/

FROM artifacts-${ARTIFACTS} AS artifacts

# A shell for poking at the artifacts: docker build --target debug ...
FROM {{DEBUG_IMAGE}} AS debug
COPY --from=artifacts /dist/ {{BIN_DIR}}/
USER {{USER}}
ENTRYPOINT ["/bin/sh"]

# The image: nothing but the binaries{{BASE_NOTE}}.
FROM {{FINAL_IMAGE}} AS image
COPY --from=artifacts /dist/ {{BIN_DIR}}/
{{FILES}}
{{ENV}}
{{WORKDIR}}
{{EXPOSE}}
{{HEALTHCHECK}}
{{STOPSIGNAL}}
{{LABELS}}
USER {{USER}}
ENTRYPOINT {{ENTRYPOINT}}
{{CMD}}

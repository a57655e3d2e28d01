#!/bin/sh
# The two steps of a release over a CI matrix (examples/ci/github-actions.yml runs them):
#
#   release.sh platform PLATFORM   build one platform and push it by digest; prints the
#                                  pushed reference (REPO@sha256:…) on stdout
#   release.sh merge REF...        merge the per-platform images into one tagged index
#
# Environment: IMAGE (registry/repo, required), TAG (for merge), PROJECT (default .),
# KILN (default kiln), KILNFLAGS (extra flags, e.g. --registry-ca ca.pem).
set -eu
: "${IMAGE:?set IMAGE=registry.example.com/team/app}"
KILN=${KILN:-kiln}
PROJECT=${PROJECT:-.}
step=${1:?usage: release.sh platform PLATFORM | merge REF...}
shift
case "$step" in
platform)
    platform=${1:?usage: release.sh platform PLATFORM}
    # shellcheck disable=SC2086
    digest=$($KILN build "$PROJECT" --release --platform "$platform" \
        --output "docker://$IMAGE" --push-by-digest -q ${KILNFLAGS:-} | tail -n 1)
    echo "$IMAGE@$digest"
    ;;
merge)
    : "${TAG:?set TAG=1.2.3}"
    # shellcheck disable=SC2086
    $KILN index merge --output "docker://$IMAGE:$TAG" ${KILNFLAGS:-} "$@"
    ;;
*)
    echo "unknown step $step: use platform or merge" >&2
    exit 2
    ;;
esac

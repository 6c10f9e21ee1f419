#!/usr/bin/env bash
# Installs what the graph rendering test (tests/graph_render.rs and the render tests of
# tests/flows_*.rs) needs to render flow graphs with real renderers:
#   - Graphviz `dot`, Debian's Chromium and the DejaVu fonts (PNG charts' text) (apt-get, only
#     when root and missing);
#   - Mermaid's CLI (`mmdc`) from the npm registry, pinned by tools/render/package-lock.json,
#     into tools/render/node_modules (git-ignored). Puppeteer's own browser download is skipped:
#     tools/render/puppeteer-config.json points it at /usr/bin/chromium.
# Idempotent: when everything is in place it only checks and returns at once.
# Never fails the build: where a tool cannot be installed (not root, no npm, no network) it says
# why and the rendering tests skip with that reason.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/tools/render"

missing_pkgs=()
command -v dot >/dev/null 2>&1 || missing_pkgs+=(graphviz)
[ -x /usr/bin/chromium ] || missing_pkgs+=(chromium)
# The text of PNG charts (flspec::fl::history::plot; without a font they are drawn without text).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing_pkgs+=(fonts-dejavu-core)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup-render-tools: installing ${missing_pkgs[*]} with apt-get"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing_pkgs[@]}"; } \
            >/dev/null 2>&1 || echo "setup-render-tools: apt-get install ${missing_pkgs[*]} failed; the tests that need them will skip"
    else
        echo "setup-render-tools: ${missing_pkgs[*]} missing and not root (or no apt-get); install them to render graphs, the tests that need them will skip"
    fi
fi

mmdc="$tools/node_modules/.bin/mmdc"
stamp="$tools/node_modules/.package-lock.json"
if [ -x "$mmdc" ] && [ -f "$stamp" ] && ! [ "$tools/package-lock.json" -nt "$stamp" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "setup-render-tools: npm is missing; install Node.js 20+ to render Mermaid graphs, the Mermaid tests will skip"
    exit 0
fi
echo "setup-render-tools: installing Mermaid's CLI into tools/render/node_modules (npm ci)"
(cd "$tools" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || echo "setup-render-tools: npm ci failed (no network?); the Mermaid tests will skip"
exit 0

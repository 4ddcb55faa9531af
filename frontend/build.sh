#!/usr/bin/env bash
# Builds the tool page's front end into voila_templates/skriptoteket/static/ (tool-page.js, tool-page.css).
# The built files are committed, so installing Skriptoteket needs no Node.js; rebuild after changing src/ or the
# pinned versions in package.json (npm and esbuild from the npm registry; package-lock.json pins the rest).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npx esbuild src/index.js --bundle --minify --format=iife --target=es2020 --legal-comments=linked \
  --loader:.svg=dataurl --loader:.png=dataurl --loader:.woff=dataurl --loader:.woff2=dataurl \
  --alias:sanitize-html=./src/escape-html.js --define:process.env.NODE_ENV='"production"' \
  --outfile=../voila_templates/skriptoteket/static/tool-page.js
ls -l ../voila_templates/skriptoteket/static/tool-page.*

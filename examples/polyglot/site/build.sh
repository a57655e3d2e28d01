#!/bin/sh
# The example's "frontend build": every content/*.txt becomes dist/NAME.html, plus an index.
set -eu
rm -rf dist
mkdir -p dist/assets
printf 'body { font-family: sans-serif; }\n' > dist/assets/site.css
{
  echo '<!doctype html><title>polyglot</title><link rel="stylesheet" href="assets/site.css">'
  echo '<h1>kiln polyglot example</h1><ul>'
  for f in content/*.txt; do
    name=$(basename "$f" .txt)
    { echo "<!doctype html><title>$name</title><pre>"; cat "$f"; echo '</pre>'; } > "dist/$name.html"
    echo "<li><a href=\"$name.html\">$name</a></li>"
  done
  echo '</ul>'
} > dist/index.html

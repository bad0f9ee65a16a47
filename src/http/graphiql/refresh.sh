#!/usr/bin/env bash
# Refreshes the vendored GraphiQL page assets from the npm registry: the exact versions below, as
# published (byte for byte; README.md beside this script lists their sha256). Change a version here,
# run the script, update README.md's table, and run the tests (tests/it/graphiql.rs, tests/it/browser.rs).
set -euo pipefail
GRAPHIQL=4.1.2 # the last major release with a UMD build that runs from plain <script> tags
REACT=18.3.1   # the last React with UMD builds (GraphiQL 4 supports React 18 and 19)
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null
for tarball in "graphiql-$GRAPHIQL" "react-$REACT" "react-dom-$REACT"; do
  mkdir "${tarball%-*}"
  tar -xzf "$tarball.tgz" -C "${tarball%-*}" --strip-components=1
done
cp graphiql/graphiql.min.js graphiql/graphiql.min.css "$here/"
cp react/umd/react.production.min.js react-dom/umd/react-dom.production.min.js "$here/"
cp graphiql/LICENSE "$here/LICENSE-graphiql"
cp react/LICENSE "$here/LICENSE-react"
cd "$here"
sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js

#!/usr/bin/env bash
# Builds the Azure Functions package: dist/dvrouter.zip, with at its root
#   host.json              (its customHandler.description.defaultExecutablePath must be "dvrouter")
#   <Function>/function.json for each functions/<Function>/function.json
#   dvrouter               (static linux/amd64 binary, mode 0755)
#   routes.yaml            (from $ROUTES, which must pass `dvrouter validate --no-resolve`)
# That is the layout the Functions host expects of a custom handler
# (https://learn.microsoft.com/azure/azure-functions/functions-custom-handlers).
#
# Environment:
#   VERSION  version stamped into the binary (main.version); default: git describe, else "dev"
#   ROUTES   routes file to ship as routes.yaml; default examples/routes.yaml
#   DIST     output folder; default dist
#   PYTHON   Python 3 used to write the zip; default python3
set -euo pipefail

cd "$(dirname "$0")/.."

ROUTES="${ROUTES:-examples/routes.yaml}"
DIST="${DIST:-dist}"
PYTHON="${PYTHON:-python3}"
if [ -z "${VERSION:-}" ]; then
	VERSION="$(git describe --tags --always --dirty 2>/dev/null || echo dev)"
fi

fail() {
	echo "package: $*" >&2
	exit 1
}

[ -f host.json ] || fail "host.json not found at the repository root"
[ -d functions ] || fail "functions/ not found at the repository root"
[ -f "$ROUTES" ] || fail "routes file $ROUTES not found (set ROUTES=path/to/routes.yaml)"
command -v "$PYTHON" >/dev/null || fail "$PYTHON not found; it writes the zip (set PYTHON=...)"

# One Python program, run twice: `check` before the build (so a bad host.json or function.json
# fails fast), `zip` after it. Python's zipfile writes each entry's Unix mode, which `zip` may
# not be installed to do, and the fixed timestamps and sorted entries keep the zip reproducible.
packager() {
	"$PYTHON" - "$@" <<'PY'
import json, os, sys, zipfile

mode, dist, routes = sys.argv[1], sys.argv[2], sys.argv[3]
binary = "dvrouter"

def die(msg):
    sys.stderr.write("package: " + msg + "\n")
    sys.exit(1)

with open("host.json", encoding="utf-8") as f:
    try:
        host = json.load(f)
    except ValueError as e:
        die("host.json is not valid JSON: %s" % e)
path = (host.get("customHandler") or {}).get("description", {}).get("defaultExecutablePath")
if path != binary:
    die("host.json customHandler.description.defaultExecutablePath is %r; it must be %r, "
        "the binary this package ships" % (path, binary))

functions = []
for name in sorted(os.listdir("functions")):
    fj = os.path.join("functions", name, "function.json")
    if not os.path.isfile(fj):
        continue
    if name in (binary, "routes.yaml", "host.json"):
        die("function folder %r clashes with a file at the package root" % name)
    with open(fj, encoding="utf-8") as f:
        try:
            json.load(f)
        except ValueError as e:
            die("%s is not valid JSON: %s" % (fj, e))
    functions.append((name, fj))
if not functions:
    die("no functions/<Name>/function.json found")
if mode == "check":
    sys.exit(0)

def add(z, arcname, src, perm):
    info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix, so the mode below is honoured on extraction
    info.external_attr = (0o100000 | perm) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(src, "rb") as f:
        z.writestr(info, f.read())

out = os.path.join(dist, "dvrouter.zip")
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w") as z:
    add(z, "host.json", "host.json", 0o644)
    for name, fj in functions:
        add(z, name + "/function.json", fj, 0o644)
    add(z, binary, os.path.join(dist, "pkg", binary), 0o755)
    add(z, "routes.yaml", routes, 0o644)
os.replace(tmp, out)
print("package: wrote %s (functions: %s)" % (out, ", ".join(n for n, _ in functions)))
PY
}

packager check "$DIST" "$ROUTES"

# The route file is checked as `dvrouter validate` checks it, with a binary for this machine,
# before anything is built for Azure: a package never ships a file the service would refuse at
# start-up. The settings it names are the app's, not this machine's, so they are not resolved.
mkdir -p "$DIST/pkg" "$DIST/tool"
go build -buildvcs=false -o "$DIST/tool/dvrouter" .
if ! "$DIST/tool/dvrouter" validate --no-resolve --routes "$ROUTES"; then
	fail "routes file $ROUTES is invalid (problems above); nothing was packaged"
fi

rm -f "$DIST/dvrouter.zip"
echo "package: building dvrouter $VERSION for linux/amd64"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -buildvcs=false -trimpath \
	-ldflags "-s -w -X main.version=$VERSION" -o "$DIST/pkg/dvrouter" .

packager zip "$DIST" "$ROUTES"

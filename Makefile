# dvrouter: `make run` serves locally on Azurite, `make test` runs every test.
# Both install what they need on a fresh machine: Node packages through npm ci, and for `make test`
# Debian's chromium (the console's browser test) when it is missing.

GO        ?= go
PORT      ?= 7071
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can fail a run with a bare "context deadline exceeded" at the deadline
# (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME  ?= 100000x
export GOFLAGS := -buildvcs=false

# Fuzz targets: package and name. `make test` runs each for $(FUZZTIME); `make fuzz` far longer.
FUZZ_TARGETS := \
	./pkg/dataverse:FuzzDecode \
	./pkg/dataverse:FuzzDecodeBody \
	./pkg/odata:FuzzCompile \
	./pkg/odata:FuzzMatchCached \
	./pkg/wdl:FuzzCompile \
	./pkg/config:FuzzLoadRoutes \
	./pkg/customhandler:FuzzServiceBusMessage \
	./pkg/failures:FuzzParseID \
	./pkg/failures:FuzzParseContinuation \
	./handlers:FuzzPrincipalIdentity

.PHONY: run test vet unit bench-smoke fuzz-short fuzz bench cost faults package build tools browser clean

build:
	$(GO) build -o dvrouter .

tools: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The support console's browser test (test/console) drives Debian's chromium; installed once.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ]; then \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y chromium; \
	fi

run: tools build
	PORT=$(PORT) ./scripts/run-local.sh

test: tools browser vet unit bench-smoke fuzz-short

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -p 2 -timeout 20m ./...

# One iteration of each Web API client benchmark, which `make bench` does not run, so that they
# keep working (the canned pair once stopped at a 404 unnoticed); about a second, no figures.
BENCH_SMOKE := ./pkg/dataverse/webapi

bench-smoke:
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x $(BENCH_SMOKE)

fuzz-short:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzz $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 2 $$pkg || exit 1; done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=3000000x

bench: tools
	./scripts/bench.sh

# CPU and allocations per request, direct webhook against the bare forwarder (ROUNDS=5).
cost:
	./scripts/cost.sh

faults: tools
	./scripts/faults.sh

package:
	./scripts/package.sh

clean:
	rm -rf dist dvrouter .run

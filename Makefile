# webstack — see README.md.
SHELL := /bin/bash
GO ?= go
# Set on the command line (make plan STACK=prod), never from the environment:
# a STACK or CONFIG exported in a shell for something else changes nothing here.
STACK = dev
FORMAT = text
CONFIG =
# Settings of every go command make runs (tests, builds, the release, the
# offline tools), so that they share one build cache:
# - build tags: the WAF's JSON-schema operator (@validateSchema, which no CRS
#   rule uses) and FerretDB's PostgreSQL backend (the local engine is SQLite)
#   are left out: 52 packages fewer to compile, and less in the release;
# - no cgo, as the release is built: pure-Go DNS and user lookups, nothing
#   compiled or linked through the machine's C toolchain.
# (Set here, not added to the shell's: a GOFLAGS=-short or a CGO_ENABLED
# exported for something else changes nothing; make GOFLAGS=… still can.)
export GOFLAGS := -tags=coraza.disabled_operators.validateSchema,ferretdb_no_postgresql
export CGO_ENABLED := 0
# Where the RealWorld Postman collection is (see scripts/postman.sh).
REALWORLD ?= ../shared/realworld
export REALWORLD

.PHONY: test-release lighthouse staticcheck twin twin-up twin-down twin-deps screenshots test deps check-fmt vet lint-workflows unit postman release-smoke plan build run tools bench diagrams cost FORCE

## test: formatting, vet, staticcheck, the workflow lint, every Go test (the
## browser suites under two font sets, the fault workload) and the Postman
## suite, as steps that overlap where they can and say what they are doing
## (internal/cmd/testrun; each step's output in .test-logs/). It installs what
## it needs (scripts/deps.sh) or says exactly what to run.
test:
	@echo "make test: building its runner (internal/cmd/testrun)…"
	@$(GO) run ./internal/cmd/testrun -goroot "$$($(GO) env GOROOT)" test

## test-release: the linux/arm64 release under qemu-user, and as root the dev
## stack's twin (CI runs it after make test; minutes, so not in make test).
test-release:
	@echo "make test-release: building its runner (internal/cmd/testrun)…"
	@$(GO) run ./internal/cmd/testrun -goroot "$$($(GO) env GOROOT)" release

## deps: the programs the tests need (apt-get as root or with sudo -n).
deps:
	@bash scripts/deps.sh test

## staticcheck: honnef.co/go/tools (a Go tool of this module) on every package.
staticcheck:
	$(GO) tool staticcheck ./...

## lint-workflows: actionlint (a Go tool of this module) on .github/workflows.
lint-workflows:
	$(GO) tool actionlint

## release-smoke: the release build's web and api roles, run for real under qemu-user
## (make test-release runs it, and the dev twin as root).
release-smoke: build
	bash scripts/release-smoke.sh

## tools: newman (the Postman suite) and axe-core (the browser suite's audits), from npm.
## The stamp is made only when npm ci finished (it empties node_modules first), so an
## interrupted install is done again, not taken for a whole one.
tools: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## postman: the official RealWorld suite through web (WAF on) → api → FerretDB.
postman: tools
	@bash scripts/postman.sh || [ $$? -eq 77 ]

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
RELEASE_FLAGS := -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=$(VERSION)"

## diagrams: docs/architecture.md (Mermaid, all stacks) and an SVG per stack (Graphviz).
diagrams:
	@$(MAKE) -s --no-print-directory build >&2
	$(GO) run ./internal/cmd/offline docs --out docs
	for s in dev staging prod; do dot -Tsvg docs/architecture-$$s.dot -o docs/architecture-$$s.svg; done

## cost: monthly estimate of STACK by resource and tier, and all stacks compared.
cost:
	@$(MAKE) -s --no-print-directory build >&2
	@$(GO) run ./internal/cmd/offline plan --stack $(STACK) --format cost $(foreach kv,$(CONFIG),-c $(kv)) $(COSTFLAGS)

## build: the release the stacks deploy, reproducibly: dist/conduit-linux-arm64.
build:
	GOOS=linux GOARCH=arm64 $(GO) build $(RELEASE_FLAGS) -o dist/conduit-linux-arm64 ./app/cmd/conduit
	@sha256sum dist/conduit-linux-arm64

## bin/conduit: the same program for this machine (bench).
bin/conduit: FORCE
	$(GO) build $(RELEASE_FLAGS) -o bin/conduit ./app/cmd/conduit
FORCE:

## bench: load run (not part of test): four request mixes, c=32, 10 s each,
## through web (WAF on) and directly against api; prints req/s, p50, p99;
## then the CPU of the costliest single requests (BenchmarkWorstRequests).
bench: bin/conduit
	$(GO) run ./app/cmd/conduit-bench --conduit bin/conduit -c 32 -d 10s $(BENCHFLAGS)
	@echo "The costliest single requests through the web tier (CPU per request, one at a time):"
	$(GO) test -run '^$$' -bench BenchmarkWorstRequests -benchtime 5x ./app/web

## screenshots: docs/screenshots/*.png, each screen at desktop and phone size
## (<name>-phone.png), from the real browser run.
screenshots: tools
	$(GO) test -count=1 -run TestBrowserFlows ./app/cmd/conduit -args -screenshots=$(CURDIR)/docs/screenshots

## lighthouse: Lighthouse 12 on home, an article, a profile and the forms, mobile
## and desktop; fails below accessibility/performance/best practices 95, SEO 90.
## Not in make test (about 3 minutes; installs 200 MB into scripts/lighthouse).
lighthouse:
	bash scripts/lighthouse.sh

## twin: STACK's twin on this machine (root): the plan's network as namespaces,
## its security groups as nftables, AWS as stand-ins, every instance booted from
## its own user data (the arm64 release under qemu-user); then the reachability
## matrix and the RealWorld suite from the "internet", and everything torn down.
## Exits non-zero on any failed check. See docs/twin.md.
TWIN_FLAGS = --stack $(STACK) --conduit bin/conduit --newman node_modules/.bin/newman $(foreach kv,$(CONFIG),-c $(kv))
twin: twin-deps
	bin/twin check $(TWIN_FLAGS) --postman "$(wildcard $(REALWORLD)/Conduit.postman_collection.json)"

## twin-up / twin-down: leave STACK's twin running (.twin/STACK/hosts.json), remove it.
twin-up: twin-deps
	bin/twin up $(TWIN_FLAGS)
twin-down:
	$(GO) build -o bin/twin ./internal/cmd/twin
	bin/twin down $(TWIN_FLAGS)

twin-deps: tools build bin/conduit
	@bash scripts/deps.sh ip nft qemu-aarch64
	$(GO) build -o bin/twin ./internal/cmd/twin

## run: the whole path on this machine at http://127.0.0.1:8080/ (the site) and
## /api (the API). The first build takes a couple of minutes and says so.
run:
	@test -x bin/conduit-local || echo "make run: building conduit (the first build compiles every dependency: about two minutes)…"
	@$(GO) build -o bin/conduit-local ./app/cmd/conduit
	@echo "make run: starting conduit local (Ctrl-C stops it; --web-addr/--admin-addr move its ports: make run ARGS='--web-addr 127.0.0.1:8090')"
	@bin/conduit-local local $(ARGS)

check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## unit: every Go test (the browser suite audits each screen with axe-core, from tools).
unit: tools
	CI=$${CI:-true} $(GO) test -count=1 ./...

## plan: print a stack's resource graph offline (FORMAT=text|json|mermaid|dot|cost), e.g.
##   make plan STACK=prod FORMAT=json CONFIG="certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/example"
##   make plan STACK=dev CONFIG="webTlsSecretArn=arn:aws:secretsmanager:us-east-1:123456789012:secret:webstack/dev/web-tls-AbCdEf"
plan:
	@$(MAKE) -s --no-print-directory build >&2
	@$(GO) run ./internal/cmd/offline plan --stack $(STACK) --format $(FORMAT) $(foreach kv,$(CONFIG),-c $(kv))

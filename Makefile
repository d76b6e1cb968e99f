# webstack — see README.md.
SHELL := /bin/bash
GO ?= go
STACK ?= dev
FORMAT ?= text
CONFIG ?=

.PHONY: test check-fmt vet unit plan

## test: everything CI runs — formatting, vet, unit tests.
test: check-fmt vet unit

check-fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 ./...

## plan: print a stack's resource graph offline, e.g.
##   make plan STACK=prod FORMAT=json CONFIG="certificateArn=arn:aws:acm:us-east-1:123456789012:certificate/example"
plan:
	@$(GO) run . plan --stack $(STACK) --format $(FORMAT) $(foreach kv,$(CONFIG),-c $(kv))

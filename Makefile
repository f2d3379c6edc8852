# The Makefile is the contract: the README and CI call these targets.
GO      ?= go
BIN     := bin/reaction
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
PKGS    := ./...

.PHONY: all build test lint demo bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/reaction

# Unit, example, fuzz-seed and end-to-end tests (the e2e tests build and run
# the real binary), all under the race detector.
test: lint build
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Runs the daemon without root on a generated attack stream; actions only print.
demo: build
	cd examples/demo && ../../$(BIN) start -c reaction.yml -s "$${TMPDIR:-/tmp}/reaction-demo/reaction.sock"

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzCompile -fuzztime $(FUZZTIME) ./compile/
	$(GO) test -run '^$$' -fuzz FuzzPrefilter -fuzztime $(FUZZTIME) ./compile/literal/

clean:
	rm -rf bin

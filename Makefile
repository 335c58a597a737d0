# shmpc: make test | race | lint | fuzz | e2e | bench
GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 60s

.PHONY: all test race lint fuzz e2e bench build

all: lint test

build:
	$(GO) build -o shmpc ./cmd/shmpc

test:
	$(GO) test ./...

race:
	$(GO) test -race $$($(GO) list ./... | grep -v /e2e)

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# fuzz runs every fuzz target for FUZZTIME each (go test allows one target per run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

e2e:
	@echo "make e2e: not yet (the fault-injection suite is its own issue)"

bench:
	@echo "make bench: not yet (shmpc bench is its own issue); package benchmarks:"
	$(GO) test -run '^$$' -bench . -benchmem ./sem/... ./shm/... ./ring/...

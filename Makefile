# shmpc: make test | race | lint | fuzz | e2e | bench | bench-go
GO          ?= go
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 60s

.PHONY: all test race lint fuzz e2e bench bench-go build

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

# e2e runs the fault-injection suite as root: it reserves huge pages (flock +
# add), runs 504 trials in both page modes, prints the table and gives the
# pages back, also on failure or interrupt.
e2e:
	./e2e/run.sh

# bench runs the shmpc bench matrix (BENCHMARKS.md): alternating runs,
# medians and ratios against the in-project baselines. BENCHFLAGS passes
# flags, e.g. BENCHFLAGS='-quick' or '-sections transport -json'. As root it
# adds the huge pages it needs and gives them back. bench-go runs the Go
# benchmarks of the packages (-benchmem: allocations per item).
BENCHFLAGS ?=
bench:
	$(GO) run ./cmd/shmpc bench $(BENCHFLAGS)

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./sem/... ./shm/... ./ring/... ./internal/payload/... ./consumer/...

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
# add), runs 504 trials in both page modes with the Go command in both roles
# and 144 with mixed pairs (shmpc-c, built with make c into its temporary
# directory, as producer, consumer or both), prints the table and gives the
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

# c builds the C library and command with cc alone, warnings as errors:
# c/build/libshmpc.a and c/build/shmpc-c, and, where a C++ compiler is
# installed, the example c/build/send_blocks. c-test builds every C unit
# test (c/tests/*.c) with the library's sources under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs them from the repository root (exit 77
# is a skip). C_BUILD moves the output (the Go interop tests build into a
# temporary directory).
C_BUILD  ?= c/build
C_CC     ?= cc
C_CXX    ?= c++
C_FLAGS  ?= -std=c11 -O2 -Wall -Wextra -Werror
C_LIB    := shmpc crc32c ring lockfile objects peer consumer consumer_open producer producer_open payload
C_HDRS   := $(wildcard c/*.h)
C_TESTS  := $(basename $(notdir $(wildcard c/tests/*.c)))

.PHONY: c c-test bench-c

# bench-c measures the four pairings of shmpc and shmpc-c (c/bench.sh:
# medians of REPS alternating runs and the mixed pairings' ratios).
bench-c:
	./c/bench.sh

c: $(C_BUILD)/libshmpc.a $(C_BUILD)/shmpc-c
	@if command -v $(C_CXX) >/dev/null 2>&1; then \
	  echo "$(C_CXX) c/examples/send_blocks.cpp"; \
	  $(C_CXX) -std=c++17 -O2 -Wall -Wextra -Werror -Ic -o $(C_BUILD)/send_blocks c/examples/send_blocks.cpp $(C_BUILD)/libshmpc.a -pthread || exit 1; \
	else echo "no C++ compiler ($(C_CXX)): c/examples/send_blocks.cpp not built"; fi

$(C_BUILD)/obj/%.o: c/%.c $(C_HDRS)
	@mkdir -p $(C_BUILD)/obj
	$(C_CC) $(C_FLAGS) -pthread -c $< -o $@

$(C_BUILD)/libshmpc.a: $(C_LIB:%=$(C_BUILD)/obj/%.o)
	ar rcs $@ $^

$(C_BUILD)/shmpc-c: c/shmpc-c.c c/cli.c $(C_HDRS) $(C_BUILD)/libshmpc.a
	$(C_CC) $(C_FLAGS) -pthread -o $@ c/shmpc-c.c c/cli.c $(C_BUILD)/libshmpc.a

c-test:
	@mkdir -p $(C_BUILD)/tests
	@set -e; failed=0; for t in $(C_TESTS); do \
	  $(C_CC) -std=c11 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -fno-omit-frame-pointer -pthread -Ic -o $(C_BUILD)/tests/$$t c/tests/$$t.c $(C_LIB:%=c/%.c) c/cli.c; \
	  rc=0; ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 $(C_BUILD)/tests/$$t || rc=$$?; \
	  case $$rc in 0) echo "PASS $$t";; 77) echo "SKIP $$t";; *) echo "FAIL $$t (exit $$rc)"; failed=1;; esac; \
	done; exit $$failed

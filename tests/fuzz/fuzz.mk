# tests/fuzz/fuzz.mk -- libFuzzer harnesses for every stage (tests/fuzz/README.md).
# Included by the top-level Makefile.
#
#   make fuzz          build build-fuzz/fuzz_{parse,grad,steps,emit,simplify,array}
#   make fuzz-smoke    run each for FUZZ_SECONDS (default 10) on a copy of the
#                      seed corpus; fails if any of them finds a crash
#   make fuzz-run      run each for FUZZ_SECONDS (default 600), one after the
#                      other, growing build-fuzz/corpus-NAME
#
# FUZZERS= chooses harnesses (default all six), FUZZ_FLAGS= adds libFuzzer
# flags.  The library is built by this same Makefile with B=build-fuzz, so the
# Bison/Flex rules and the source list are the top-level ones.

FUZZ_B       := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
                -fsanitize-coverage-ignorelist=$(CURDIR)/tests/fuzz/coverage-ignore.txt
FUZZ_LDFLAGS := -fsanitize=fuzzer $(FUZZ_SAN)
FUZZ_LIBS    := -lgmp -lm -lpthread
FUZZ_ALL     := fuzz_parse fuzz_grad fuzz_steps fuzz_emit fuzz_simplify fuzz_array
FUZZERS      ?= $(FUZZ_ALL)
FUZZ_DICT    := tests/fuzz/matdiff.dict
FUZZ_OPTS     = -rss_limit_mb=2048 -max_len=4096 -dict=$(FUZZ_DICT) \
                -print_final_stats=1 $(FUZZ_FLAGS)

# Time limits per input.  fuzz-run is the slow-input gate: 2 s, except for
# the harnesses that run --check, fuzz_grad, fuzz_steps and fuzz_emit (every
# gradient, and every derivation line, at up to five points, and the
# printed text), and fuzz_array (six derivations and emissions per input,
# three of them Hessians): their slowest seeds, 25- and 36-factor n x n chains with
# up to 15 variables, take 2-3 s in this build and 0.2-0.5 s in the release
# build, and a run beside another job is slower still.  fuzz-smoke looks for crashes
# on a CI machine shared with the other test jobs, where the same seed took
# over 3 s: a timeout there would say more about the machine than about
# matdiff, so it allows 30 s.
# ASan keeps 256 MB of freed memory in quarantine by default; the Hessian
# derivations free large dense matrices, and over a long run the quarantine
# plus the allocator's caches pushed fuzz_steps past the 2 GB limit with
# no input needing it (the input left as the OOM artifact takes 4 MB in the
# release build).  A smaller quarantine still catches use-after-free of
# recent frees.
FUZZ_ASAN_OPTIONS ?= quarantine_size_mb=64
FUZZ_TIMEOUT       ?= 2
FUZZ_TIMEOUT_CHECK ?= 6
FUZZ_SMOKE_TIMEOUT ?= 30


.PHONY: fuzz fuzz-smoke fuzz-run fuzz-seeds fuzz-clean

# In the sub-make that builds the library (B=build-fuzz) only the top-level
# rules are wanted.
ifneq ($(B),$(FUZZ_B))

fuzz: $(FUZZ_ALL:%=$(FUZZ_B)/%)

# Always ask the sub-make: it knows the sources and relinks nothing when the
# archive is up to date (and then the harnesses are not relinked either).
$(FUZZ_B)/libmatdiff.a: fuzz-force
	@$(MAKE) --no-print-directory B=$(FUZZ_B) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" XCFLAGS= \
	    $(FUZZ_B)/libmatdiff.a

.PHONY: fuzz-force
fuzz-force:

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(FUZZ_B)/libmatdiff.a
	$(FUZZ_CC) -std=c11 -D_POSIX_C_SOURCE=200809L -Iinclude -I$(FUZZ_B) -Wall -Wextra -Wno-unused-function \
	    $(FUZZ_CFLAGS) $(FUZZ_LDFLAGS) -o $@ $< $(FUZZ_B)/libmatdiff.a $(FUZZ_LIBS)

fuzz-seeds: $(FUZZ_B)/seeds/.stamp
$(FUZZ_B)/seeds/.stamp: tests/fuzz/corpus.sh $(wildcard tests/golden/*.test)
	sh tests/fuzz/corpus.sh $(FUZZ_B)/seeds
	@touch $@

# Each harness on a fresh copy of its seeds; all run, then the status.
fuzz-smoke: fuzz fuzz-seeds
	@mkdir -p $(FUZZ_B)/artifacts; failed=; \
	for f in $(FUZZERS); do \
	    case $$f in fuzz_steps|fuzz_emit) seeds=$(FUZZ_B)/seeds-mode ;; *) seeds=$(FUZZ_B)/seeds ;; esac; \
	    rm -rf $(FUZZ_B)/smoke-$$f; mkdir -p $(FUZZ_B)/smoke-$$f; \
	    cp $$seeds/* $(FUZZ_B)/smoke-$$f/; \
	    echo "== $$f: $(or $(FUZZ_SECONDS),10) s (log: $(FUZZ_B)/smoke-$$f.log)"; \
	    start=$$(date +%s); \
	    if ASAN_OPTIONS=$(FUZZ_ASAN_OPTIONS) ./$(FUZZ_B)/$$f $(FUZZ_OPTS) -timeout=$(FUZZ_SMOKE_TIMEOUT) -max_total_time=$(or $(FUZZ_SECONDS),10) \
	        -artifact_prefix=$(FUZZ_B)/artifacts/$$f- $(FUZZ_B)/smoke-$$f \
	        > $(FUZZ_B)/smoke-$$f.log 2>&1; then r=ok; else r=FAILED; failed="$$failed $$f"; fi; \
	    end=$$(date +%s); \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' $(FUZZ_B)/smoke-$$f.log | tr '\n' ' '; \
	    echo "corpus: $$(ls $(FUZZ_B)/smoke-$$f | wc -l) files, $$((end - start)) s: $$r"; \
	    if [ $$r = FAILED ]; then grep -E 'ERROR|==== fuzz|SUMMARY|Test unit written' $(FUZZ_B)/smoke-$$f.log | head -8; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-smoke: failed:$$failed"; exit 1; fi; \
	echo "fuzz-smoke: all passed"

# Long runs, one harness at a time, corpora kept between runs.
fuzz-run: fuzz fuzz-seeds
	@mkdir -p $(FUZZ_B)/artifacts; failed=; \
	for f in $(FUZZERS); do \
	    case $$f in fuzz_steps|fuzz_emit) seeds=$(FUZZ_B)/seeds-mode ;; *) seeds=$(FUZZ_B)/seeds ;; esac; \
	    case $$f in fuzz_steps|fuzz_grad|fuzz_emit|fuzz_array) t=$(FUZZ_TIMEOUT_CHECK) ;; *) t=$(FUZZ_TIMEOUT) ;; esac; \
	    mkdir -p $(FUZZ_B)/corpus-$$f; \
	    echo "== $$f: $(or $(FUZZ_SECONDS),600) s (log: $(FUZZ_B)/run-$$f.log)"; \
	    if ASAN_OPTIONS=$(FUZZ_ASAN_OPTIONS) ./$(FUZZ_B)/$$f $(FUZZ_OPTS) -timeout=$$t -max_total_time=$(or $(FUZZ_SECONDS),600) \
	        -artifact_prefix=$(FUZZ_B)/artifacts/$$f- $(FUZZ_B)/corpus-$$f $$seeds \
	        > $(FUZZ_B)/run-$$f.log 2>&1; then r=ok; else r=FAILED; failed="$$failed $$f"; fi; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' $(FUZZ_B)/run-$$f.log | tr '\n' ' '; \
	    echo "corpus: $$(ls $(FUZZ_B)/corpus-$$f | wc -l) files: $$r"; \
	    if [ $$r = FAILED ]; then grep -E 'ERROR|==== fuzz|SUMMARY|Test unit written' $(FUZZ_B)/run-$$f.log | head -8; fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz-run: failed:$$failed"; exit 1; fi

fuzz-clean:
	rm -rf $(FUZZ_B)

endif

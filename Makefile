# matdiff -- one non-recursive GNU Makefile.
#
#   make            build ./matdiff and build/libmatdiff.a
#   make demo       build and run the built-in example (seed 003, checked numerically)
#   make test       what CI runs: make check, the same suite under ASan + UBSan,
#                   and every fuzz harness for 10 s (make fuzz-smoke; needs clang)
#   make check      unit tests (Check) + golden CLI cases + property test
#                   + 3000 random programs (tests/random.c) + LaTeX compiles
#                   + docs/codegen.md's calling example compiled and run
#                   + tests/indep/ and tests/textbook/ (numpy, /usr/bin/python3)
#                   + the NumPy, PyTorch and Octave code run in their runtimes,
#                   and the complete examples of docs/arrays.md, numpy.md, torch.md, octave.md
#   make test-numpy, test-torch, test-octave   one array runtime alone
#   make random     the random differential tester: N=200000 programs (SEED, JOBS)
#   make asan       the whole suite under AddressSanitizer + UBSan (build-asan/)
#   make valgrind   the suite under valgrind (golden: seeds, derivations, errors)
#   make bench      timing of the seeds and of deep tanh networks
#   make docs       regenerate README.md and docs/ from docs/src/*.in (needs python3)
#   make install    the binary, the man page and the docs under PREFIX (default
#                   /usr/local; DESTDIR for staging); make uninstall removes them
#   make fuzz       the libFuzzer harnesses (clang); fuzz-smoke, fuzz-run run them
#   make help       this list
#
# Generated parser and scanner sources go to $(B)/, never to grammar/.

# Parallel targets (make -j2 test) print each target's output in one piece.
MAKEFLAGS += --output-sync=target

B        ?= build
CC       ?= cc
BISON    ?= bison
FLEX     ?= flex
CFLAGS   ?= -O2 -g
WARN     := -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter -Wvla
CPPFLAGS += -Iinclude -I$(B)
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS) $(XCFLAGS)
LDLIBS   += -lgmp -lm -lpthread
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

# The stages are folders of src/, numbered in pipeline order (0_base,
# 1_front, 2_core, 3_print, 4_emit, 5_run); objects mirror them in $(B)/.
LIB_SRCS := $(filter-out src/5_run/main.c,$(wildcard src/*/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(B)/%.o) $(B)/parser.o $(B)/lexer.o
TEST_SRCS := $(wildcard tests/unit/*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(B)/tests/%)

.PHONY: all demo docs test check unit golden arrays test-numpy test-torch test-octave property random random-ci latex codegen-doc io indep textbook install-check asan valgrind bench clean help install uninstall FORCE
.DEFAULT_GOAL := all

BIN      ?= matdiff

all: $(BIN)

$(BIN): $(B)/5_run/main.o $(B)/libmatdiff.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/libmatdiff.a: $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(B)/parser.c $(B)/parser.h &: grammar/parser.y | $(B)
	$(BISON) -Wall -Werror --defines=$(B)/parser.h -o $(B)/parser.c $<

$(B)/lexer.c $(B)/lexer.h &: grammar/lexer.l | $(B)
	$(FLEX) --header-file=$(B)/lexer.h -o $(B)/lexer.c $<

# Generated code gets fewer warnings: it is not ours to fix.
$(B)/parser.o: $(B)/parser.c $(B)/lexer.h
	$(CC) $(CPPFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(XCFLAGS) -c -o $@ $<
$(B)/lexer.o: $(B)/lexer.c $(B)/parser.h
	$(CC) $(CPPFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L $(CFLAGS) $(XCFLAGS) -Wno-unused-function -c -o $@ $<

$(B)/%.o: src/%.c $(wildcard include/*.h include/*.def) $(B)/parser.h $(B)/lexer.h | $(B)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<
include src/4_emit/emit.mk

$(B):
	mkdir -p $(B) $(B)/tests

$(B)/tests/%: tests/unit/%.c tests/unit/md_test.h $(B)/libmatdiff.a | $(B)
	$(CC) $(CPPFLAGS) -Itests/unit $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(CHECK_LIBS) $(LDLIBS)

# The README's test command (make -j2 test): the plain suite and the
# ASan + UBSan one run side by side, and inside each every test binary and
# every golden file is a target of its own, so both cores stay busy.
test: check asan fuzz-smoke

check: unit golden property random-ci latex codegen-doc io indep textbook install-check arrays

UNIT_RUNS := $(TEST_BINS:$(B)/tests/%=$(B)/run-%)
unit: $(UNIT_RUNS)
$(B)/run-%: $(B)/tests/% FORCE
	@echo "== $<"; $(VALGRIND) $<
FORCE:

# GOLDEN: the case files to run (default all of tests/golden/*.test)
GOLDEN ?= $(wildcard tests/golden/*.test)
golden: $(GOLDEN:tests/golden/%.test=$(B)/golden-%)
$(B)/golden-%: tests/golden/%.test $(BIN) FORCE
	@echo "== $<"; MATDIFF="$(VALGRIND) ./$(BIN)" sh tests/golden/run.sh $<

latex: $(BIN)
	@MATDIFF="./$(BIN)" sh tests/latex.sh

# docs/codegen.md's calling example, compiled and run from the page (C and C++).
codegen-doc: $(BIN)
	@MATDIFF="./$(BIN)" sh tests/codegen_doc.sh docs/codegen.md

# make install and make uninstall into a temporary DESTDIR and PREFIX, and
# man matdiff from there.
install-check: $(BIN)
	@BIN="$(BIN)" B="$(B)" sh tests/install.sh

# Output that cannot be written (a full disk, a closed stdout) fails.
io: $(BIN)
	@MATDIFF="./$(BIN)" sh tests/io.sh

# The independent differential tester (tests/indep/): its own parser and
# numpy evaluator, written from docs/language.md, read the printed text.
# INDEP_N programs from INDEP_SEED; Debian's python3 with python3-numpy.
INDEP_PYTHON ?= /usr/bin/python3
INDEP_N ?= 200
INDEP_SEED ?= 1
indep: $(BIN)
	@$(INDEP_PYTHON) tests/indep/indep.py --count $(INDEP_N) --seed $(INDEP_SEED) --matdiff ./$(BIN)

# Textbook-compact answers (tests/textbook/): the size of matdiff's gradient
# of each classic objective against the textbook's, and both checked
# numerically by tests/indep/'s evaluator.
textbook: $(BIN)
	@$(INDEP_PYTHON) tests/textbook/run.py --matdiff ./$(BIN)
# The array backends run in their real runtimes (tests/arrays/run.py):
# every golden case with a derivative, emitted by --format numpy, torch
# and octave, run on random data and compared with the internal evaluator
# and with finite differences; then the complete example of each page
# about them (ARRAYS_DOCS), as a user would run it.  Debian's python3
# with python3-numpy (and python3-torch, octave); a runtime that is not
# installed is skipped with a message by `arrays`, and is an error for its
# own target.
ARRAYS_PYTHON ?= /usr/bin/python3
ARRAYS_RANDOM ?= 60
ARRAYS_SEED ?= 1
ARRAYS_RUN = $(ARRAYS_PYTHON) tests/arrays/run.py --tool $(B)/tests/arraycase --random-tool $(B)/tests/random \
             --random $(ARRAYS_RANDOM) --seed $(ARRAYS_SEED) --golden $(wildcard tests/golden/*.test)
ARRAYS_FORMATS ?= numpy torch octave
# The pages whose "A complete example" section tests/arrays_doc.sh runs.
ARRAYS_DOCS ?= docs/arrays.md docs/numpy.md docs/torch.md docs/octave.md
arrays: $(B)/tests/arraycase $(B)/tests/random $(BIN)
	@for f in $(ARRAYS_FORMATS); do \
	    if [ $$f = torch ] && ! $(ARRAYS_PYTHON) -c 'import torch' 2>/dev/null; then \
	        echo "== arrays: python3-torch is not installed: --format torch not run (make test-torch)"; \
	    elif [ $$f = octave ] && ! command -v octave >/dev/null 2>&1; then \
	        echo "== arrays: octave is not installed: --format octave not run (make test-octave)"; \
	    else $(MAKE) --no-print-directory test-$$f || exit 1; fi; \
	done
	@MATDIFF="./$(BIN)" ARRAYS_PYTHON=$(ARRAYS_PYTHON) sh tests/arrays_doc.sh $(ARRAYS_DOCS)
test-numpy test-torch test-octave: test-%: $(B)/tests/arraycase $(B)/tests/random $(BIN)
	@echo "== arrays $*"; $(ARRAYS_RUN) --format $*
$(B)/tests/arraycase: tests/arrays/arraycase.c $(B)/libmatdiff.a | $(B)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(LDLIBS)

property: $(B)/tests/property
	@$(VALGRIND) $(B)/tests/property 300

$(B)/tests/property: tests/property.c $(B)/libmatdiff.a | $(B)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(LDLIBS)

# The random differential tester (tests/random.c): N programs from SEED,
# JOBS at a time, the C of every EVERY-th one compiled and run.
N ?= 200000
SEED ?= 1
JOBS ?= 2
EVERY ?= 25
random: $(B)/tests/random
	@$(B)/tests/random $(N) $(SEED) -j $(JOBS) -c $(EVERY)

# What make check runs of it: a few thousand programs (under ASan, fewer).
RANDOM_CI ?= 3000
random-ci: $(B)/tests/random
	@$(B)/tests/random $(RANDOM_CI) 1 -j $(JOBS) -c 60

$(B)/tests/random: tests/random.c $(B)/libmatdiff.a | $(B)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -o $@ $< $(B)/libmatdiff.a $(LDLIBS)

asan:
	$(MAKE) B=build-asan BIN=build-asan/matdiff CC=$(CC) RANDOM_CI=400 INDEP_N=50 \
	    ARRAYS_FORMATS=numpy ARRAYS_RANDOM=20 \
	    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LDFLAGS="-fsanitize=address,undefined" check

# Under valgrind every golden case costs seconds (and is run three times:
# the case, --check, the round trip), so make valgrind runs the seeds, the
# derivations and the error paths; VALGRIND_GOLDEN="$(wildcard tests/golden/*.test)"
# runs them all (> 1 hour).
VALGRIND_GOLDEN ?= tests/golden/seeds.test tests/golden/steps.test tests/golden/errors.test
valgrind: $(BIN) $(TEST_BINS)
	$(MAKE) VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect" \
	    CK_FORK=no GOLDEN="$(VALGRIND_GOLDEN)" check

bench: $(BIN)
	@sh tests/bench.sh

clean:
	rm -rf build build-asan matdiff

help:
	@sed -n '3,/make help/p' Makefile | sed 's/^# //'

docs: $(BIN)
	python3 docs/gen.py docs/src/README.md.in README.md
	python3 docs/gen.py docs/src/language.md.in docs/language.md
	python3 docs/gen.py docs/src/developer.md.in docs/developer.md
	python3 docs/gen.py docs/src/matdiff.1.in docs/matdiff.1 man
	python3 docs/gen.py docs/src/derivations.md.in docs/derivations.md
	python3 docs/gen.py docs/src/codegen.md.in docs/codegen.md
	python3 docs/gen.py docs/src/arrays.md.in docs/arrays.md
	python3 docs/gen.py docs/src/numpy.md.in docs/numpy.md
	python3 docs/gen.py docs/src/torch.md.in docs/torch.md
	python3 docs/gen.py docs/src/octave.md.in docs/octave.md

# Installation: the binary, the man page (its FILES section pointing at the
# installed docs) and the docs, with GNU's PREFIX and DESTDIR conventions.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
DOCDIR  ?= $(PREFIX)/share/doc/matdiff
DOCS    := README.md docs/language.md docs/identities.md docs/derivations.md docs/codegen.md docs/arrays.md \
           docs/numpy.md docs/torch.md docs/octave.md \
           docs/developer.md
INSTALL ?= install

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 755 $(BIN) $(DESTDIR)$(BINDIR)/matdiff
	sed 's|docs/\([a-z]*\.md\)|$(DOCDIR)/\1|g' docs/matdiff.1 > $(DESTDIR)$(MANDIR)/man1/matdiff.1
	chmod 644 $(DESTDIR)$(MANDIR)/man1/matdiff.1
	$(INSTALL) -m 644 $(DOCS) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 644 docs/examples/* $(DESTDIR)$(DOCDIR)/examples

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/matdiff $(DESTDIR)$(MANDIR)/man1/matdiff.1
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(wildcard docs/examples/*)))
	-rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

demo: $(BIN)
	./$(BIN) --check --wrt U,V "scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2"
include tests/fuzz/fuzz.mk

# rnnc — compiles deep recurrent network specs into specialised C.
#
# make            build rnnc and the runtime (build/rnnc, build/libnnrt.a)
# make demo       generate, build and run the sine example
# make bench      rnnc vs oneDNN vs PyTorch vs the machine's limits (QUICK=1: a smoke test)
# make test       the whole test suite (Check), PyTorch conformance included
# make sanitize   the same suite under AddressSanitizer and UndefinedBehaviorSanitizer
# make test-neon  the ISA suite for NEON, cross-compiled for AArch64 and run under qemu
# make install    install rnnc, nnrt.h and libnnrt.a under PREFIX
# V=1 shows full commands.

# ---- User settings ----------------------------------------------------------------------------
CC ?= cc
PREFIX ?= /usr/local
OPT ?= -O2 -g
V ?= 0

# ---- Toolchain and libraries ------------------------------------------------------------------
PKGS := lua5.4 jansson sleef check
pkg = $(shell pkg-config $(1) $(2) 2>/dev/null)
LUA_CFLAGS = $(call pkg,--cflags,lua5.4)
LUA_LIBS = $(call pkg,--libs,lua5.4)
JANSSON_CFLAGS = $(call pkg,--cflags,jansson)
JANSSON_LIBS = $(call pkg,--libs,jansson)
SLEEF_LIBS = $(call pkg,--libs,sleef)
CHECK_CFLAGS = $(call pkg,--cflags,check)
CHECK_LIBS = $(call pkg,--libs,check)

WARN := -std=c11 -Wall -Wextra -Werror
CFLAGS_ALL = $(WARN) $(OPT) $(SAN)
BUILD ?= build

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-5s %s\n' $(1) $(2)
endif

VERSION := 0.1.0

# ---- rnnc and the runtime ---------------------------------------------------------------------
GEN_SOURCES := $(wildcard generator/*.lua generator/backend/*.lua) $(wildcard templates/*)
RUNTIME_SOURCES := $(wildcard runtime/*.c)
RUNTIME_OBJECTS := $(patsubst runtime/%.c,$(BUILD)/runtime/%.o,$(RUNTIME_SOURCES))

# Build rnnc and the runtime.
all: $(BUILD)/rnnc $(BUILD)/libnnrt.a

$(BUILD)/embed: generator/embed.c
	@mkdir -p $(BUILD)
	$(call say,CC,$@)
	$(Q)$(CC) $(WARN) -O1 $< -o $@

$(BUILD)/embedded.c: $(BUILD)/embed $(GEN_SOURCES)
	$(call say,GEN,$@)
	$(Q)$(BUILD)/embed $@ $(GEN_SOURCES)

$(BUILD)/rnnc: generator/rnnc.c generator/embedded.h $(BUILD)/embedded.c
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_ALL) -DRNNC_VERSION='"$(VERSION)"' $(LUA_CFLAGS) -Igenerator \
		generator/rnnc.c $(BUILD)/embedded.c $(LUA_LIBS) -o $@

$(BUILD)/runtime/%.o: runtime/%.c $(wildcard runtime/*.h)
	@mkdir -p $(BUILD)/runtime
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(JANSSON_CFLAGS) -DRNNC_VERSION='"$(VERSION)"' -Iruntime -c $< -o $@

$(BUILD)/libnnrt.a: $(RUNTIME_OBJECTS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# Install rnnc, the runtime header and library under PREFIX.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(BUILD)/rnnc $(DESTDIR)$(PREFIX)/bin/rnnc
	install -m 644 runtime/nnrt.h $(DESTDIR)$(PREFIX)/include/nnrt.h
	install -m 644 $(BUILD)/libnnrt.a $(DESTDIR)$(PREFIX)/lib/libnnrt.a

# ---- Tests ------------------------------------------------------------------------------------
# Every spec under tests/specs/forward and tests/specs/torch is generated (file name = model
# name), compiled with -Wall -Wextra -Werror, and linked into the one Check runner.
TEST_SPECS := $(wildcard tests/specs/forward/*.lua tests/specs/torch/*.lua tests/specs/grad/*.lua)
TEST_MODELS := $(basename $(notdir $(TEST_SPECS)))
TEST_GEN := out/tests/models
# The backend the test models are generated for (make test TEST_ISA=avx2 runs the suite on it).
TEST_ISA ?= scalar
ISA_CFLAGS_avx512 := -mavx512f -mfma
ISA_CFLAGS_avx2 := -mavx2 -mfma
ISA_CFLAGS_sse4 := -msse4.1
ISA_CFLAGS = $(ISA_CFLAGS_$(TEST_ISA))
TEST_MODEL_OBJECTS := $(patsubst %,$(BUILD)/tests/models/%.o,$(TEST_MODELS))
TEST_SOURCES := $(wildcard tests/*.c)
TEST_OBJECTS := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(TEST_SOURCES))
TEST_CFLAGS = $(CFLAGS_ALL) -pthread -Iruntime -Itests -I$(TEST_GEN) $(CHECK_CFLAGS) -DRNNC_SOURCE_DIR='"$(CURDIR)"' \
	-DRNNC_BUILD_DIR='"$(abspath $(BUILD))"' -DRNNC_TEST_GEN_DIR='"$(abspath $(TEST_GEN))"' \
	-DRNNC_SANITIZE_FLAGS='"$(SAN)"'

vpath %.lua tests/specs/forward tests/specs/torch tests/specs/grad

$(TEST_GEN)/%.c: %.lua $(BUILD)/rnnc
	$(call say,GEN,$@)
	$(Q)$(BUILD)/rnnc generate $< -o $(TEST_GEN) --isa $(TEST_ISA) >/dev/null

$(BUILD)/tests/models/%.o: $(TEST_GEN)/%.c
	@mkdir -p $(BUILD)/tests/models
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_ALL) $(ISA_CFLAGS) -Iruntime -I$(TEST_GEN) -c $< -o $@

$(TEST_GEN)/registry.c: tests/gen_registry.sh $(TEST_SPECS)
	@mkdir -p $(TEST_GEN)
	$(call say,GEN,$@)
	$(Q)sh tests/gen_registry.sh $(TEST_MODELS) > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/registry.o: $(TEST_GEN)/registry.c
	@mkdir -p $(BUILD)/tests
	$(Q)$(CC) $(CFLAGS_ALL) -Iruntime -Itests -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c $(wildcard tests/*.h) runtime/nnrt.h
	@mkdir -p $(BUILD)/tests
	$(call say,CC,$@)
	$(Q)$(CC) $(TEST_CFLAGS) -c $< -o $@

# The ISA suite (tests/test_isa.c): every spec under tests/specs/isa is generated for the scalar
# backend under its own name and for each of ISA_VARIANTS as <name>_<isa>, each compiled with its
# ISA's flags; tests/gen_isa_registry.sh lists the (scalar, variant, isa) pairs the suite compares.
ISA_SPECS := $(wildcard tests/specs/isa/*.lua)
ISA_NAMES := $(basename $(notdir $(ISA_SPECS)))
ISA_VARIANTS := sse4 avx2 avx512
ISA_GEN = $(TEST_GEN)/isa
ISA_OBJECTS = $(BUILD)/tests/isa/registry.o $(patsubst %,$(BUILD)/tests/isa/%.o,$(ISA_NAMES) \
	$(foreach isa,$(ISA_VARIANTS),$(addsuffix _$(isa),$(ISA_NAMES))))

$(ISA_GEN)/%.c: tests/specs/isa/%.lua $(BUILD)/rnnc
	$(call say,GEN,$@)
	$(Q)$(BUILD)/rnnc generate $< -o $(ISA_GEN) --isa scalar >/dev/null

$(BUILD)/tests/isa/%.o: $(ISA_GEN)/%.c
	@mkdir -p $(BUILD)/tests/isa
	$(call say,CC,$@)
	$(Q)$(CC) $(CFLAGS_ALL) -Iruntime -I$(ISA_GEN) -c $< -o $@

# Per variant ISA: generate <name>_<isa>.c and compile it with that ISA's flags (a shorter stem than
# the scalar rules above, so make prefers these).
define isa_variant_rules
$$(ISA_GEN)/%_$(1).c: tests/specs/isa/%.lua $$(BUILD)/rnnc
	$$(call say,GEN,$$@)
	$$(Q)$$(BUILD)/rnnc generate $$< -o $$(ISA_GEN) --isa $(1) --name $$*_$(1) >/dev/null

$$(BUILD)/tests/isa/%_$(1).o: $$(ISA_GEN)/%_$(1).c
	@mkdir -p $$(BUILD)/tests/isa
	$$(call say,CC,$$@)
	$$(Q)$$(CC) $$(CFLAGS_ALL) $$(ISA_CFLAGS_$(1)) -Iruntime -I$$(ISA_GEN) -c $$< -o $$@
endef
$(foreach isa,$(ISA_VARIANTS),$(eval $(call isa_variant_rules,$(isa))))

# Rewritten only when its text changes (ISA_VARIANTS may differ between calls).
$(ISA_GEN)/registry.c: tests/gen_isa_registry.sh $(ISA_SPECS) FORCE
	@mkdir -p $(ISA_GEN)
	$(Q)sh tests/gen_isa_registry.sh "$(ISA_VARIANTS)" $(ISA_NAMES) > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else printf '  %-5s %s\n' GEN $@; mv $@.tmp $@; fi

$(BUILD)/tests/isa/registry.o: $(ISA_GEN)/registry.c tests/isa_models.h
	@mkdir -p $(BUILD)/tests/isa
	$(Q)$(CC) $(CFLAGS_ALL) -Iruntime -Itests -c $< -o $@

$(BUILD)/run_tests: $(TEST_OBJECTS) $(TEST_MODEL_OBJECTS) $(BUILD)/tests/registry.o $(ISA_OBJECTS) $(BUILD)/libnnrt.a
	$(call say,LD,$@)
	$(Q)$(CC) $(SAN) -pthread $^ $(CHECK_LIBS) $(JANSSON_LIBS) $(SLEEF_LIBS) -lm -o $@

# A runner of the suites on the ISA models alone, isa and threads (what test-neon runs under qemu,
# and tsan under ThreadSanitizer), for work on a backend or on the threads.
$(BUILD)/run_isa_tests: tests/isa/run_isa_tests.c $(BUILD)/tests/test_isa.o $(BUILD)/tests/test_threads.o $(BUILD)/tests/reference.o \
		$(ISA_OBJECTS) $(BUILD)/libnnrt.a
	$(call say,LD,$@)
	$(Q)$(CC) $(TEST_CFLAGS) $^ $(CHECK_LIBS) $(JANSSON_LIBS) $(SLEEF_LIBS) -lm -o $@

# Parallel builds on every core unless the caller chose (make -jN).
JOBS = $(if $(findstring -j,$(MAKEFLAGS)),,-j$(NPROC))

# Build and run the whole suite (installs missing packages when root).
test: deps-test
	@$(MAKE) --no-print-directory $(JOBS) all $(BUILD)/run_tests
	$(call say,TEST,$(BUILD)/run_tests)
	$(Q)$(BUILD)/run_tests

# Only the ISA suite: every SIMD backend this CPU has against the scalar one.
test-isa: deps-test
	@$(MAKE) --no-print-directory $(JOBS) all $(BUILD)/run_isa_tests
	$(call say,TEST,$(BUILD)/run_isa_tests)
	$(Q)$(BUILD)/run_isa_tests

# The ISA suite for NEON: cross-compiled for AArch64 and run under qemu-aarch64 (installs the
# cross toolchain, qemu and the arm64 libraries when root).
test-neon: deps-build
	@$(MAKE) --no-print-directory all
	$(Q)BUILD='$(BUILD)' V='$(V)' sh scripts/test_neon.sh

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer (separate build tree).
sanitize: deps-test
	@$(MAKE) --no-print-directory $(JOBS) BUILD=build/sanitize OPT='-O1 -g' \
		SAN='-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
		TEST_GEN=out/tests/sanitize all build/sanitize/run_tests
	$(call say,TEST,build/sanitize/run_tests)
	$(Q)ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/sanitize/run_tests

# The multi-core entry points and the worker team under ThreadSanitizer: the suites on the ISA
# models (most generated with parallel = "split"), in their own build tree.
tsan: deps-test
	@$(MAKE) --no-print-directory $(JOBS) BUILD=build/tsan OPT='-O1 -g' SAN='-fsanitize=thread' \
		TEST_GEN=out/tests/tsan all build/tsan/run_isa_tests
	$(call say,TEST,build/tsan/run_isa_tests)
	$(Q)TSAN_OPTIONS='halt_on_error=1 second_deadlock_stack=1' build/tsan/run_isa_tests

deps-build:
	@sh scripts/deps.sh build

deps-demo:
	@sh scripts/deps.sh build plot

deps-test:
	@sh scripts/deps.sh test

deps-bench:
	@sh scripts/deps.sh bench
	@sh scripts/deps.sh bench-optional

# ---- Demo -------------------------------------------------------------------------------------
# Generate, build, train and run the sine example end to end (a plot when gnuplot is there).
demo: deps-demo
	@$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory -C examples/sine run

# Every example: sine, the adding problem, the character-level language model, the classifier.
examples: deps-build
	@$(MAKE) --no-print-directory all
	$(Q)for e in sine adding charlm classify; do $(MAKE) --no-print-directory -C examples/$$e run || exit 1; done

# ---- Benchmarks -------------------------------------------------------------------------------
# rnnc (every ISA) vs oneDNN vs PyTorch vs the machine's limits: table, out/bench/ (QUICK=1: smoke test).
bench: deps-bench
	@$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory -C bench build $(BENCH_VARS) $(if $(findstring -j,$(MAKEFLAGS)),,-j$(NPROC))
	$(Q)$(MAKE) --no-print-directory -C bench run $(BENCH_VARS)

BENCH_VARS = BUILD=$(abspath $(BUILD)) QUICK=$(or $(QUICK),0) V=$(V) $(if $(CONFIGS),CONFIGS="$(CONFIGS)") \
	$(if $(ISAS),ISAS="$(ISAS)") $(if $(RUNS),RUNS=$(RUNS)) $(if $(THREADS),THREADS=$(THREADS))
NPROC = $(shell nproc 2>/dev/null || echo 1)

# Remove everything built or generated.
clean:
	rm -rf $(BUILD) out/tests out/sine out/adding out/charlm out/classify out/bench

.PHONY: all install test test-isa test-neon sanitize tsan demo examples bench clean deps-build deps-demo deps-test deps-bench FORCE
FORCE:
.DELETE_ON_ERROR:
.SECONDARY:

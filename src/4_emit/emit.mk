# src/4_emit/emit.mk -- the C backend's build rules, included by the
# top-level Makefile (after its $(B)/%.o rule; B, CC, WARN, CFLAGS are its).
#
# The private header of the stage files is a prerequisite here because the
# top-level pattern rule only knows include/.

$(patsubst src/%.c,$(B)/%.o,$(wildcard src/4_emit/*.c)): src/4_emit/emit_internal.h

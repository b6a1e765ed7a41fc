/*
 * The one function every fuzz target defines: libFuzzer calls it for each
 * input, and so does replay_main.c when make check replays the corpora.
 */
#ifndef WARREN_FUZZ_TARGET_H
#define WARREN_FUZZ_TARGET_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif

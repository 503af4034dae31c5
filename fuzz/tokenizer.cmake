# The tokenizer: encode/decode of hostile text with both real tokenizers, and the
# tokenizer.json loader on mutated files.
alkfw_fuzz(fuzz_tokenizer_encode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_tokenizer_encode.c
           LIBS tokenizer common)
target_compile_definitions(fuzz_tokenizer_encode PRIVATE ALKFW_SOURCE_DIR="${ALKFW_ROOT}"
                           ALKFW_SHARED_DIR="${ALKFW_SHARED_DIR}")
alkfw_fuzz(fuzz_tokenizer_load SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_tokenizer_load.c
           LIBS tokenizer common)

alkfw_bench(bench_tokenize SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/tokenize.c LIBS tokenizer common)

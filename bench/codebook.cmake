# The codebook stage alone: scoring time per screen and fitting time (module codebook).
alkfw_bench(bench_codebook SOURCES ${CMAKE_CURRENT_LIST_DIR}/codebook.c LIBS codebook formats common)

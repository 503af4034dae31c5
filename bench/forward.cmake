# The detector forward pass: speed, sgemm ratio, peak RSS and load time (module model).
alkfw_bench(bench_forward SOURCES ${CMAKE_CURRENT_LIST_DIR}/forward.c LIBS model formats common)

# The whole screen (tokenize, forward, codebook, alarm, JSON) on hostile bytes (module firewall).
alkfw_fuzz(fuzz_screen SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_screen.c
           LIBS firewall codebook model tokenizer formats common)
target_include_directories(fuzz_screen PRIVATE ${ALKFW_ROOT}/include ${ALKFW_ROOT}/src)
target_compile_definitions(fuzz_screen PRIVATE ALKFW_SOURCE_DIR="${ALKFW_ROOT}")

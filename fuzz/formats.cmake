# The safetensors header parser (module formats).
alkfw_fuzz(fuzz_safetensors SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_safetensors.c
           LIBS formats common)
target_include_directories(fuzz_safetensors PRIVATE ${ALKFW_ROOT}/include ${ALKFW_ROOT}/src)

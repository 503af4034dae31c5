# The codebook loader (safetensors header, tensor shapes, metadata, value checks).
alkfw_fuzz(fuzz_codebook SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_codebook.c
           LIBS codebook formats common)

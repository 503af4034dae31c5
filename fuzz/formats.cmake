# The safetensors header parser (module formats).
alkfw_fuzz(fuzz_safetensors SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_safetensors.c
           LIBS formats common)
target_include_directories(fuzz_safetensors PRIVATE ${ALKFW_ROOT}/include ${ALKFW_ROOT}/src)

# The config.json parser of the detector model (module model), the other file format read
# from a model directory before any weight.
alkfw_fuzz(fuzz_model_config SOURCES ${CMAKE_CURRENT_LIST_DIR}/fuzz_model_config.c
           LIBS model formats common)
target_include_directories(fuzz_model_config PRIVATE ${ALKFW_ROOT}/include ${ALKFW_ROOT}/src)
